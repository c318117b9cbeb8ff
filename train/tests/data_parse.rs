//! Each example shape parses; each validation error names the right line and problem.

use std::io::Write;
use std::path::PathBuf;

use graft_train::data::{
    check, DataError, Dataset, Example, LineError, LoadOptions, LossMask, Message,
    PreferencePrompt, Role, Segment,
};

fn write_file(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.path().join(name);
    let mut f = std::fs::File::create(&p).expect("create test file");
    f.write_all(bytes).expect("write test file");
    p
}

fn parse_one(line: &str) -> Result<Example, LineError> {
    let v: serde_json::Value = serde_json::from_str(line).expect("test JSON is valid");
    Example::from_json(&v)
}

#[test]
fn every_shape_parses() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = concat!(
        r#"{"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi?"},{"role":"assistant","content":"Hello."}]}"#,
        "\n",
        r#"{"instruction":"Translate to French","input":"cat","output":"chat"}"#,
        "\n",
        r#"{"instruction":"Name a colour","output":"blue"}"#,
        "\n",
        r#"{"prompt":"2+2=","completion":"4"}"#,
        "\n",
        r#"{"text":"Once upon a time there was a fox."}"#,
        "\n",
        r#"{"prompt":"Best pet?","chosen":"A cat.","rejected":"A rock."}"#,
        "\n",
        r#"{"prompt":[{"role":"system","content":"Be kind."},{"role":"user","content":"Best pet?"}],"chosen":[{"role":"assistant","content":"A dog."}],"rejected":"A brick."}"#,
        "\n"
    );
    let p = write_file(&dir, "shapes.jsonl", text.as_bytes());
    let (ds, report) = Dataset::load(&p, &LoadOptions::default()).expect("all shapes valid");
    assert_eq!(ds.len(), 7);
    assert_eq!(report.kept, 7);
    assert!(report.dropped.is_empty());
    let ex: Vec<&Example> = ds.examples().collect();
    assert_eq!(
        ex[0],
        &Example::Messages(vec![
            Message {
                role: Role::System,
                content: "Be brief.".into()
            },
            Message {
                role: Role::User,
                content: "Hi?".into()
            },
            Message {
                role: Role::Assistant,
                content: "Hello.".into()
            },
        ])
    );
    assert_eq!(
        ex[1],
        &Example::Instruction {
            instruction: "Translate to French".into(),
            input: Some("cat".into()),
            output: "chat".into()
        }
    );
    assert_eq!(
        ex[2],
        &Example::Instruction {
            instruction: "Name a colour".into(),
            input: None,
            output: "blue".into()
        }
    );
    assert_eq!(
        ex[3],
        &Example::PromptCompletion {
            prompt: "2+2=".into(),
            completion: "4".into()
        }
    );
    assert_eq!(
        ex[4],
        &Example::Text("Once upon a time there was a fox.".into())
    );
    assert_eq!(
        ex[5],
        &Example::Preference {
            prompt: PreferencePrompt::Text("Best pet?".into()),
            chosen: "A cat.".into(),
            rejected: "A rock.".into()
        }
    );
    // TRL's conversational form: the prompt is a conversation, a response is a string or a
    // one-element list holding the assistant's message.
    assert_eq!(
        ex[6],
        &Example::Preference {
            prompt: PreferencePrompt::Chat(vec![
                Message {
                    role: Role::System,
                    content: "Be kind.".into()
                },
                Message {
                    role: Role::User,
                    content: "Best pet?".into()
                },
            ]),
            chosen: "A dog.".into(),
            rejected: "A brick.".into()
        }
    );
    assert_eq!(report.shapes.get("messages"), Some(&1));
    assert_eq!(report.shapes.get("instruction"), Some(&2));
    assert_eq!(report.shapes.get("preference"), Some(&2));
    // Line numbers are kept.
    let lines: Vec<usize> = ds.records().iter().map(|r| r.line).collect();
    assert_eq!(lines, vec![1, 2, 3, 4, 5, 6, 7]);
}

#[test]
fn segments_follow_the_loss_mask_policy() {
    let ex = parse_one(
        r#"{"messages":[{"role":"system","content":"S"},{"role":"user","content":"U"},{"role":"assistant","content":"A1"},{"role":"user","content":"U2"},{"role":"assistant","content":"A2"}]}"#,
    )
    .expect("valid");
    let segs = ex.segments(LossMask::CompletionOnly);
    let flags: Vec<(&str, bool)> = segs
        .iter()
        .map(|s| (s.text.as_str(), s.trainable))
        .collect();
    assert_eq!(
        flags,
        vec![
            ("S", false),
            ("U", false),
            ("A1", true),
            ("U2", false),
            ("A2", true)
        ]
    );
    assert!(ex.segments(LossMask::AllTokens).iter().all(|s| s.trainable));

    let ins =
        parse_one(r#"{"instruction":"Do X","input":"with Y","output":"done"}"#).expect("valid");
    assert_eq!(
        ins.segments(LossMask::default()),
        vec![
            Segment {
                text: "Do X\n\nwith Y".into(),
                trainable: false,
                role: Some(Role::User)
            },
            Segment {
                text: "done".into(),
                trainable: true,
                role: Some(Role::Assistant)
            },
        ]
    );
    let pc = parse_one(r#"{"prompt":"","completion":"only this"}"#).expect("empty prompt ok");
    let segs = pc.segments(LossMask::default());
    assert_eq!(segs.len(), 1);
    assert!(segs[0].trainable);
    let t = parse_one(r#"{"text":"all of it"}"#).expect("valid");
    assert_eq!(
        t.segments(LossMask::CompletionOnly),
        vec![Segment {
            text: "all of it".into(),
            trainable: true,
            role: None
        }]
    );
    let pref = parse_one(r#"{"prompt":"p","chosen":"c","rejected":"r"}"#).expect("valid");
    let (c, r) = pref
        .preference_segments(LossMask::default())
        .expect("preference pair");
    assert_eq!((c[1].text.as_str(), r[1].text.as_str()), ("c", "r"));
    assert!(!c[0].trainable && c[1].trainable);
    assert!(t.preference_segments(LossMask::default()).is_none());

    // A conversational prompt: one segment per turn. In the pair view only the response is
    // trained on (an assistant turn inside the prompt is context); in the supervised view the
    // pair is the conversation + chosen, trained as a `messages` example would be.
    let chat = parse_one(
        r#"{"prompt":[{"role":"user","content":"U1"},{"role":"assistant","content":"A1"},{"role":"user","content":"U2"}],"chosen":[{"role":"assistant","content":"good"}],"rejected":[{"role":"assistant","content":"bad"}]}"#,
    )
    .expect("valid");
    let (c, r) = chat
        .preference_segments(LossMask::default())
        .expect("preference pair");
    let flags = |segs: &[Segment]| -> Vec<(String, Option<Role>, bool)> {
        segs.iter()
            .map(|s| (s.text.clone(), s.role, s.trainable))
            .collect()
    };
    let prompt_flags = vec![
        ("U1".to_string(), Some(Role::User), false),
        ("A1".to_string(), Some(Role::Assistant), false),
        ("U2".to_string(), Some(Role::User), false),
    ];
    let mut want_c = prompt_flags.clone();
    want_c.push(("good".into(), Some(Role::Assistant), true));
    let mut want_r = prompt_flags;
    want_r.push(("bad".into(), Some(Role::Assistant), true));
    assert_eq!(flags(&c), want_c);
    assert_eq!(flags(&r), want_r);
    let sup_segs = chat.segments(LossMask::CompletionOnly);
    let sup: Vec<(&str, bool)> = sup_segs
        .iter()
        .map(|s| (s.text.as_str(), s.trainable))
        .collect();
    assert_eq!(
        sup,
        vec![("U1", false), ("A1", true), ("U2", false), ("good", true)]
    );
}

/// Load a file whose line 3 is `bad` (lines 1, 2 and 4 valid) under the strict policy and
/// return the error.
fn strict_error(bad: &[u8]) -> (usize, LineError, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut bytes = Vec::new();
    bytes.extend_from_slice(b"{\"text\":\"first line\"}\n{\"text\":\"second line\"}\n");
    bytes.extend_from_slice(bad);
    bytes.extend_from_slice(b"\n{\"text\":\"fourth line\"}\n");
    let p = write_file(&dir, "bad.jsonl", &bytes);
    match Dataset::load(&p, &LoadOptions::default()) {
        Err(e @ DataError::Line { .. }) => {
            let msg = e.to_string();
            match e {
                DataError::Line { line, error, path } => {
                    assert_eq!(path, p);
                    (line, error, msg)
                }
                _ => unreachable!(),
            }
        }
        other => panic!("expected a line error, got {other:?}"),
    }
}

#[test]
fn bad_json_reports_line_and_column() {
    let (line, err, msg) = strict_error(br#"{"text": "unterminated}"#);
    assert_eq!(line, 3);
    match err {
        LineError::BadJson { column, message } => {
            assert_eq!(column, 23, "serde_json column");
            assert!(message.contains("EOF"), "{message}");
        }
        e => panic!("wrong error {e:?}"),
    }
    assert!(
        msg.contains("bad.jsonl:3: invalid JSON at column 23"),
        "{msg}"
    );

    let (line, err, _) = strict_error(br#"{"text": "a",, }"#);
    assert_eq!(line, 3);
    assert!(
        matches!(err, LineError::BadJson { column: 14, .. }),
        "{err:?}"
    );
}

#[test]
fn structural_errors_are_precise() {
    let cases: Vec<(&[u8], LineError)> = vec![
        (b"[1,2]", LineError::NotObject { found: "an array" }),
        (b"\"just a string\"", LineError::NotObject { found: "a string" }),
        (
            br#"{"foo":"bar","baz":1}"#,
            LineError::UnknownShape {
                keys: "baz, foo".into(),
            },
        ),
        (
            br#"{"instruction":"do it"}"#,
            LineError::MissingField {
                field: "output".into(),
            },
        ),
        (
            br#"{"prompt":"p"}"#,
            LineError::MissingField {
                field: "completion".into(),
            },
        ),
        (
            br#"{"prompt":"p","chosen":"c"}"#,
            LineError::MissingField {
                field: "rejected".into(),
            },
        ),
        (
            br#"{"text":42}"#,
            LineError::WrongType {
                field: "text".into(),
                expected: "a string",
                found: "a number",
            },
        ),
        (
            br#"{"messages":"hi"}"#,
            LineError::WrongType {
                field: "messages".into(),
                expected: "an array",
                found: "a string",
            },
        ),
        (
            br#"{"messages":[{"role":"user","content":"q"},{"role":"assistant","content":null}]}"#,
            LineError::WrongType {
                field: "messages[1].content".into(),
                expected: "a string",
                found: "null",
            },
        ),
        (
            br#"{"messages":[{"role":"user","content":"q"},{"content":"a"}]}"#,
            LineError::MissingField {
                field: "messages[1].role".into(),
            },
        ),
        (
            br#"{"messages":[{"role":"user","content":"q"},{"role":"bot","content":"a"}]}"#,
            LineError::UnknownRole {
                field: "messages[1].role".into(),
                role: "bot".into(),
            },
        ),
        (
            br#"{"messages":[{"role":"system","content":"s"},{"role":"user","content":"q"}]}"#,
            LineError::NoAssistantTurn,
        ),
        (
            br#"{"messages":[{"role":"user","content":"q"},{"role":"assistant","content":"a"},{"role":"user","content":"q2"}]}"#,
            LineError::NotEndingWithAssistant {
                last_role: "user".into(),
            },
        ),
        (
            br#"{"messages":[]}"#,
            LineError::EmptyField {
                field: "messages".into(),
            },
        ),
        (
            br#"{"messages":[{"role":"user","content":"q"},{"role":"assistant","content":"  "}]}"#,
            LineError::EmptyField {
                field: "messages[1].content".into(),
            },
        ),
        (
            br#"{"prompt":"p","completion":""}"#,
            LineError::EmptyField {
                field: "completion".into(),
            },
        ),
        (
            br#"{"instruction":"i","output":"o","input":7}"#,
            LineError::WrongType {
                field: "input".into(),
                expected: "a string",
                found: "a number",
            },
        ),
        (
            br#"{"text":""}"#,
            LineError::EmptyField {
                field: "text".into(),
            },
        ),
    ];
    check_cases(cases);
}

fn check_cases(cases: Vec<(&[u8], LineError)>) {
    for (bad, expected) in cases {
        let (line, err, msg) = strict_error(bad);
        assert_eq!(line, 3, "line for {}", String::from_utf8_lossy(bad));
        assert_eq!(err, expected, "for {}", String::from_utf8_lossy(bad));
        assert!(msg.contains(":3: "), "{msg}");
        assert!(msg.contains(&expected.to_string()), "{msg}");
    }
}

#[test]
fn preference_errors_are_precise() {
    let cases: Vec<(&[u8], LineError)> = vec![
        (
            br#"{"prompt":"p","rejected":"r"}"#,
            LineError::MissingField {
                field: "chosen".into(),
            },
        ),
        (
            br#"{"chosen":"c","rejected":"r"}"#,
            LineError::MissingField {
                field: "prompt".into(),
            },
        ),
        (
            br#"{"prompt":" \n ","chosen":"c","rejected":"r"}"#,
            LineError::EmptyField {
                field: "prompt".into(),
            },
        ),
        (
            br#"{"prompt":[],"chosen":"c","rejected":"r"}"#,
            LineError::EmptyField {
                field: "prompt".into(),
            },
        ),
        (
            br#"{"prompt":[{"role":"system","content":"s"},{"role":"user","content":" "}],"chosen":"c","rejected":"r"}"#,
            LineError::EmptyField {
                field: "prompt[1].content".into(),
            },
        ),
        (
            br#"{"prompt":[{"role":"user","content":"q"},{"role":"robot","content":"a"}],"chosen":"c","rejected":"r"}"#,
            LineError::UnknownRole {
                field: "prompt[1].role".into(),
                role: "robot".into(),
            },
        ),
        (
            br#"{"prompt":[{"role":"user","content":"q"},{"role":"assistant","content":"a"}],"chosen":"c","rejected":"r"}"#,
            LineError::PromptNotEndingWithUser {
                last_role: "assistant".into(),
            },
        ),
        (
            br#"{"prompt":[{"role":"system","content":"s"}],"chosen":"c","rejected":"r"}"#,
            LineError::PromptNotEndingWithUser {
                last_role: "system".into(),
            },
        ),
        (
            br#"{"prompt":7,"chosen":"c","rejected":"r"}"#,
            LineError::WrongType {
                field: "prompt".into(),
                expected: "a string or an array of messages",
                found: "a number",
            },
        ),
        (
            br#"{"prompt":"p","chosen":"  same answer ","rejected":"same answer\n"}"#,
            LineError::IdenticalResponses,
        ),
        (
            br#"{"prompt":[{"role":"user","content":"q"}],"chosen":[{"role":"assistant","content":"same"}],"rejected":" same"}"#,
            LineError::IdenticalResponses,
        ),
        (
            br#"{"prompt":"p","chosen":"","rejected":"r"}"#,
            LineError::EmptyField {
                field: "chosen".into(),
            },
        ),
        (
            br#"{"prompt":[{"role":"user","content":"q"}],"chosen":[],"rejected":"r"}"#,
            LineError::EmptyField {
                field: "chosen".into(),
            },
        ),
        (
            br#"{"prompt":[{"role":"user","content":"q"}],"chosen":"c","rejected":[{"role":"assistant","content":""}]}"#,
            LineError::EmptyField {
                field: "rejected[0].content".into(),
            },
        ),
        (
            br#"{"prompt":[{"role":"user","content":"q"}],"chosen":[{"role":"assistant","content":"a"},{"role":"assistant","content":"b"}],"rejected":"r"}"#,
            LineError::NotOneResponse {
                field: "chosen".into(),
                count: 2,
            },
        ),
        (
            br#"{"prompt":[{"role":"user","content":"q"}],"chosen":"c","rejected":[{"role":"user","content":"r"}]}"#,
            LineError::NotAssistantResponse {
                field: "rejected[0].role".into(),
                role: "user".into(),
            },
        ),
        (
            br#"{"prompt":"p","chosen":[{"role":"assistant","content":"c"}],"rejected":"r"}"#,
            LineError::WrongType {
                field: "chosen".into(),
                expected: "a string when `prompt` is a string",
                found: "an array",
            },
        ),
        (
            br#"{"prompt":[{"role":"user","content":"q"}],"chosen":{"role":"assistant","content":"c"},"rejected":"r"}"#,
            LineError::WrongType {
                field: "chosen".into(),
                expected: "a string or a one-element array of messages",
                found: "an object",
            },
        ),
        (
            br#"{"prompt":"p","chosen":"c","rejected":null}"#,
            LineError::WrongType {
                field: "rejected".into(),
                expected: "a string",
                found: "null",
            },
        ),
    ];
    // Each kind of mistake has its own message, naming the field.
    let messages: std::collections::BTreeSet<String> =
        cases.iter().map(|(_, e)| e.to_string()).collect();
    assert_eq!(messages.len(), cases.len() - 3, "{messages:#?}");
    check_cases(cases);
}

#[test]
fn data_check_reports_bad_preference_lines_with_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = concat!(
        r#"{"prompt":"Best pet?","chosen":"A cat.","rejected":"A rock."}"#,
        "\n",
        r#"{"prompt":"Best pet?","chosen":"A cat."}"#,
        "\n",
        r#"{"prompt":[],"chosen":"A cat.","rejected":"A rock."}"#,
        "\n",
        r#"{"prompt":"Best food?","chosen":"Soup","rejected":" Soup "}"#,
        "\n",
        r#"{"prompt":[{"role":"user","content":"Best pet?"}],"chosen":[{"role":"assistant","content":"A cat."}],"rejected":[{"role":"assistant","content":"A rock."}]}"#,
        "\n",
    );
    let p = write_file(&dir, "pairs.jsonl", text.as_bytes());
    let report = check(&p, &LoadOptions::default()).expect("check reads the file");
    assert_eq!(
        report.kept, 2,
        "the raw and the conversational pair are different"
    );
    let bad: Vec<(usize, &str)> = report
        .dropped
        .iter()
        .map(|d| (d.line, d.error.reason()))
        .collect();
    assert_eq!(
        bad,
        vec![
            (2, "missing_field"),
            (3, "empty_field"),
            (4, "identical_responses")
        ]
    );
    let shown = report.to_string();
    for want in [
        "pairs.jsonl:2: missing field `rejected`",
        "pairs.jsonl:3: field `prompt` is empty",
        "pairs.jsonl:4: fields `chosen` and `rejected` are identical (after trimming whitespace)",
    ] {
        assert!(shown.contains(want), "{want:?} not in {shown}");
    }
    assert!(report.verdict().is_err());
    // The strict load (what the trainer does) stops at the first one, with file:line.
    match Dataset::load(&p, &LoadOptions::default()) {
        Err(e @ DataError::Line { line: 2, .. }) => {
            assert!(e
                .to_string()
                .contains("pairs.jsonl:2: missing field `rejected`"))
        }
        other => panic!("expected line 2's error, got {other:?}"),
    }
}

#[test]
fn non_utf8_bytes_report_line_and_offset() {
    let (line, err, msg) = strict_error(b"{\"text\":\"caf\xe9 au lait\"}");
    assert_eq!(line, 3);
    assert_eq!(err, LineError::InvalidUtf8 { byte_offset: 12 });
    assert!(msg.contains("invalid UTF-8 at byte 12"), "{msg}");
}

#[test]
fn crlf_and_blank_lines_are_tolerated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = write_file(
        &dir,
        "crlf.jsonl",
        b"{\"text\":\"one two\"}\r\n\r\n   \n{\"text\":\"three four\"}",
    );
    let (ds, report) = Dataset::load(&p, &LoadOptions::default()).expect("valid");
    assert_eq!(ds.len(), 2);
    assert_eq!(report.blank, 2);
    assert_eq!(report.lines, 4);
    assert_eq!(ds.records()[1].line, 4);
    assert_eq!(ds.records()[0].raw, "{\"text\":\"one two\"}");
}

#[test]
fn missing_file_is_an_io_error_naming_the_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("nope.jsonl");
    let err = Dataset::load(&p, &LoadOptions::default()).expect_err("missing file");
    assert!(matches!(err, DataError::Io { .. }));
    assert!(err.to_string().contains("nope.jsonl"), "{err}");
}

/// `Dataset::from_reader` and `check_reader` (the fuzz target's entry points) give what
/// `Dataset::load` and `check` give for the same bytes in a file; bad options are refused
/// before anything is read.
#[test]
fn readers_match_the_file_loaders() {
    let bytes: &[u8] = b"{\"text\":\"one two\"}\r\n\nnot json\n{\"text\":\"one two\"}\n{\"prompt\":\"a\",\"completion\":\"b\"}";
    let dir = tempfile::tempdir().expect("tempdir");
    let p = write_file(&dir, "mixed.jsonl", bytes);
    let opts = LoadOptions::drop_bad();
    let opts = LoadOptions {
        max_drop_fraction: 0.5,
        ..opts
    };
    let from_file = Dataset::load(&p, &opts).expect("loads");
    let from_reader = Dataset::from_reader(std::io::Cursor::new(bytes), &p, &opts).expect("loads");
    assert_eq!(from_file.0, from_reader.0);
    assert_eq!(from_file.1.to_string(), from_reader.1.to_string());
    let checked =
        graft_train::data::check_reader(std::io::Cursor::new(bytes), &p, &opts).expect("checks");
    assert_eq!(
        checked.to_string(),
        graft_train::data::check(&p, &opts)
            .expect("checks")
            .to_string()
    );

    let bad = LoadOptions {
        max_line_bytes: 0,
        ..LoadOptions::default()
    };
    let err = Dataset::from_reader(std::io::Cursor::new(bytes), &p, &bad).expect_err("bad option");
    assert!(matches!(err, DataError::InvalidOption(_)), "{err}");
}
