//! Generates the smart-home example dataset: short natural-language smart-home requests,
//! each answered by exactly one function call in a fixed canonical format, as chat examples.
//!
//! ```text
//! cargo run -p graft-train --example gen-smart-home -- \
//!     --out examples/smart-home/data --n 500 --seed 0
//! ```
//!
//! Deterministic: the output depends only on `--n` and `--seed` (SplitMix64, no platform
//! randomness). The pooled examples are split 80/10/10 with graft-train's `split_file`
//! (split seed 0) into `train.jsonl`, `val.jsonl` and `test.jsonl` in `--out`; the pooled
//! order is chosen so that this split is stratified by function (see [`generate`]).

use std::collections::{BTreeSet, VecDeque};
use std::path::Path;

use graft_train::data::rng::SplitMix64;
use graft_train::data::{
    jaccard, normalized, shingles, Dataset, Example, Message, Record, Role, SplitRatios,
    SplitReport,
};

#[path = "gen_support/mod.rs"]
mod gen_support;

/// The system prompt of every example: the functions with their parameters, in the order
/// the reply writes them, and every allowed argument value.
pub const SYSTEM: &str = "Turn the smart-home request into one function call. Functions: \
turn_on(device, room), turn_off(device, room), set_level(device, room, value), \
set_temperature(room, value), open(device, room), close(device, room), query(device, room), \
play(room, genre). Devices: light, lamp, fan, tv, heater, blinds, curtains, garage_door. \
Rooms: kitchen, bedroom, living_room, bathroom, office, hallway, garage, dining_room. \
Genres: jazz, rock, classical, pop, blues, country, reggae, ambient. \
Reply with the call only.";

/// The functions a reply may call.
pub const FUNCTIONS: [&str; 8] = [
    "turn_on",
    "turn_off",
    "set_level",
    "set_temperature",
    "open",
    "close",
    "query",
    "play",
];

/// The allowed `device` values.
pub const DEVICES: [&str; 8] = [
    "light",
    "lamp",
    "fan",
    "tv",
    "heater",
    "blinds",
    "curtains",
    "garage_door",
];

/// The allowed `room` values.
pub const ROOMS: [&str; 8] = [
    "kitchen",
    "bedroom",
    "living_room",
    "bathroom",
    "office",
    "hallway",
    "garage",
    "dining_room",
];

/// The allowed `genre` values.
pub const GENRES: [&str; 8] = [
    "jazz",
    "rock",
    "classical",
    "pop",
    "blues",
    "country",
    "reggae",
    "ambient",
];

/// The inclusive range of `value` for `set_level` (a percentage).
pub const LEVEL_RANGE: (u32, u32) = (1, 100);

/// The inclusive range of `value` for `set_temperature` (degrees).
pub const TEMPERATURE_RANGE: (u32, u32) = (15, 28);

/// A generated message is rejected when the Jaccard similarity of its word 5-shingles
/// (graft-train's [`shingles`]) to any earlier message reaches this, so that no two
/// examples (hence no test and train example) are near duplicates.
pub const MAX_SIMILARITY: f64 = 0.6;

/// A generated message is also rejected when the Jaccard similarity of its set of
/// lower-case words to an earlier message's reaches this. Word 5-shingles see a message of
/// five words or fewer as one shingle, so on short requests they only catch exact copies;
/// this catches "Open the garage door" against "Open the garage door please".
pub const MAX_WORD_OVERLAP: f64 = 0.8;

/// The loader's default near-duplicate threshold on the whole example (system prompt, user
/// message and reply together). Every example shares the system prompt, so two short
/// messages can reach it although their own shingles differ; the generator rejects them too.
pub const LOADER_NEAR_DUP: f64 = 0.9;

/// The seed of the train/val/test split.
pub const SPLIT_SEED: u64 = 0;

/// The train/val/test fractions.
pub const RATIOS: SplitRatios = SplitRatios {
    train: 0.8,
    val: 0.1,
    test: 0.1,
};

/// The parameters of `function`, in the order the reply writes them; `None` for an unknown
/// function.
pub fn params(function: &str) -> Option<&'static [&'static str]> {
    match function {
        "turn_on" | "turn_off" | "open" | "close" | "query" => Some(&["device", "room"]),
        "set_level" => Some(&["device", "room", "value"]),
        "set_temperature" => Some(&["room", "value"]),
        "play" => Some(&["room", "genre"]),
        _ => None,
    }
}

/// The devices `function` accepts (empty for functions without a `device` parameter).
pub fn devices_for(function: &str) -> &'static [&'static str] {
    match function {
        "turn_on" | "turn_off" => &["light", "lamp", "fan", "tv", "heater"],
        "set_level" => &["light", "lamp", "fan", "blinds"],
        "open" | "close" => &["blinds", "curtains", "garage_door"],
        "query" => &DEVICES,
        _ => &[],
    }
}

/// How a device is written in messages; every form names the device (compare without case).
pub fn surfaces(device: &str) -> &'static [&'static str] {
    match device {
        "light" => &["light", "lights"],
        "lamp" => &["lamp", "floor lamp"],
        "fan" => &["fan", "ceiling fan"],
        "tv" => &["TV", "tv", "television"],
        "heater" => &["heater", "space heater"],
        "blinds" => &["blinds"],
        "curtains" => &["curtains"],
        "garage_door" => &["garage door"],
        _ => &[],
    }
}

/// How a room or genre value is written in messages: the value with `_` as a space.
pub fn spoken(value: &str) -> String {
    value.replace('_', " ")
}

/// The rooms a device is in. The garage door is always in the garage, and its messages say
/// "garage door", so the room is named in every message.
fn rooms_for(device: &str) -> &'static [&'static str] {
    match device {
        "light" => &ROOMS,
        "lamp" => &["bedroom", "living_room", "office", "hallway", "dining_room"],
        "fan" => &[
            "kitchen",
            "bedroom",
            "living_room",
            "bathroom",
            "office",
            "garage",
        ],
        "tv" => &["kitchen", "bedroom", "living_room", "office"],
        "heater" => &["bedroom", "living_room", "bathroom", "office", "garage"],
        "blinds" => &[
            "kitchen",
            "bedroom",
            "living_room",
            "bathroom",
            "office",
            "dining_room",
        ],
        "curtains" => &["bedroom", "living_room", "office", "dining_room"],
        "garage_door" => &["garage"],
        _ => &[],
    }
}

/// The canonical reply: `name(key="text", key=number)` with the parameters in
/// [`params`] order, `", "` between arguments, and only `value` unquoted.
pub fn render_call(function: &str, args: &[(&str, &str)]) -> String {
    let parts: Vec<String> = args
        .iter()
        .map(|(k, v)| {
            if *k == "value" {
                format!("{k}={v}")
            } else {
                format!("{k}=\"{v}\"")
            }
        })
        .collect();
    format!("{function}({})", parts.join(", "))
}

/// Templates for some devices of one function.
///
/// Template syntax: `[a|b|c]` picks one alternative (may be empty), `{slot}` a filler. The
/// first character is the kind: `^` an imperative (takes a polite prefix or suffix, or
/// becomes a question), `?` a question, `~` a fragment or statement.
struct Group {
    devices: &'static [&'static str],
    templates: &'static [&'static str],
}

/// The templates of one function.
struct Spec {
    function: &'static str,
    groups: &'static [Group],
}

/// Slots: `{t}` the target with its article ("the kitchen lights", "the lights in the
/// kitchen", "the garage door"), `{b}` the bare target ("kitchen lights"), `{room}` the room,
/// `{be}` is/are, `{state}` on/off or open/closed, `{on}` on or open, `{pct}` a percentage,
/// `{deg}` a temperature, `{genre}` the genre.
const SPECS: &[Spec] = &[
    Spec {
        function: "turn_on",
        groups: &[Group {
            devices: &["light", "lamp", "fan", "tv", "heater"],
            templates: &[
                "^turn on {t}",
                "^switch on {t}",
                "^turn {t} on",
                "^switch {t} on",
                "^power on {t}",
                "^put {t} on",
                "~{b} on",
                "~I [need|want] {t} on",
            ],
        }],
    },
    Spec {
        function: "turn_off",
        groups: &[Group {
            devices: &["light", "lamp", "fan", "tv", "heater"],
            templates: &[
                "^turn off {t}",
                "^switch off {t}",
                "^turn {t} off",
                "^switch {t} off",
                "^shut off {t}",
                "^power off {t}",
                "^kill {t}",
                "~{b} off",
                "~I [need|want] {t} off",
            ],
        }],
    },
    Spec {
        function: "set_level",
        groups: &[
            Group {
                devices: &["light", "lamp", "fan", "blinds"],
                templates: &[
                    "^set {t} to {pct}",
                    "^put {t} at {pct}",
                    "^adjust {t} to {pct}",
                    "^change {t} to {pct}",
                    "~{b} to {pct}",
                    "~{b} at {pct}",
                ],
            },
            Group {
                devices: &["light", "lamp"],
                templates: &["^dim {t} to {pct}", "^brighten {t} to {pct}"],
            },
        ],
    },
    Spec {
        function: "set_temperature",
        groups: &[Group {
            devices: &[],
            templates: &[
                "^set the {room} thermostat to {deg}",
                "^set the thermostat in the {room} to {deg}",
                "^set the temperature in the {room} to {deg}",
                "^make it {deg} in the {room}",
                "^[warm|heat] the {room} [up |]to {deg}",
                "^cool the {room} [down |]to {deg}",
                "~{room} [temperature|thermostat] to {deg}",
                "~I'd like the {room} at {deg}",
            ],
        }],
    },
    Spec {
        function: "open",
        groups: &[
            Group {
                devices: &["blinds", "curtains", "garage_door"],
                templates: &["^open {t}", "^open up {t}", "~I want {t} open"],
            },
            Group {
                devices: &["blinds", "garage_door"],
                templates: &["^raise {t}", "^put {t} up", "~{b} up"],
            },
        ],
    },
    Spec {
        function: "close",
        groups: &[
            Group {
                devices: &["blinds", "curtains", "garage_door"],
                templates: &["^close {t}", "^shut {t}", "~I want {t} closed"],
            },
            Group {
                devices: &["blinds", "garage_door"],
                templates: &["^lower {t}", "^put {t} down", "~{b} down"],
            },
        ],
    },
    Spec {
        function: "query",
        groups: &[Group {
            devices: &DEVICES,
            templates: &[
                "?{be} {t} {state}?",
                "?{be} {t} still {on}?",
                "?did I leave {t} {on}?",
                "?what's the status of {t}?",
                "?can you tell me if {t} {be} {state}?",
                "^check [if|whether] {t} {be} {state}",
            ],
        }],
    },
    Spec {
        function: "play",
        groups: &[Group {
            devices: &[],
            templates: &[
                "^play {genre} in the {room}",
                "^play some {genre} [music |]in the {room}",
                "^put on some {genre} [music |]in the {room}",
                "^start a {genre} playlist in the {room}",
                "^play {genre} [music |]on the {room} speaker",
                "~I want to hear {genre} in the {room}",
                "~{genre} [music |]in the {room}",
            ],
        }],
    },
];

/// Polite prefixes of an imperative (lower case; the message is capitalised afterwards).
const PREFIXES: &[&str] = &["please ", "hey, ", "hey home, ", "ok, ", "quick one: "];

/// Polite suffixes of an imperative or a fragment.
const SUFFIXES: &[&str] = &[
    " please",
    ", please",
    " pls",
    " thanks",
    ", thank you",
    " now",
    " for me",
];

/// Question forms of an imperative.
const ASKS: &[&str] = &["could you ", "can you ", "would you "];

/// One example's arguments and the way its target is written.
struct Call {
    function: &'static str,
    device: Option<&'static str>,
    room: &'static str,
    value: Option<u32>,
    genre: Option<&'static str>,
    /// The device's written form.
    surface: &'static str,
}

impl Call {
    /// The canonical reply.
    fn reply(&self) -> String {
        let value = self.value.map(|v| v.to_string());
        let mut args: Vec<(&str, &str)> = Vec::new();
        for p in params(self.function).unwrap_or(&[]) {
            let v = match *p {
                "device" => self.device.unwrap_or(""),
                "room" => self.room,
                "value" => value.as_deref().unwrap_or(""),
                "genre" => self.genre.unwrap_or(""),
                other => panic!("unknown parameter {other}"),
            };
            args.push((p, v));
        }
        render_call(self.function, &args)
    }

    fn plural(&self) -> bool {
        self.surface.ends_with('s')
    }

    /// Words that carry an argument value: typos never touch them.
    fn protected(&self) -> Vec<String> {
        let mut words: Vec<String> = Vec::new();
        for text in [self.surface.to_string(), spoken(self.room)]
            .into_iter()
            .chain(self.genre.map(str::to_string))
        {
            words.extend(text.split(' ').map(str::to_string));
        }
        words
    }
}

/// The generator's random choices.
struct Gen {
    rng: SplitMix64,
}

impl Gen {
    fn below(&mut self, n: usize) -> usize {
        self.rng.below(n as u64) as usize
    }

    fn pick<'a>(&mut self, list: &[&'a str]) -> &'a str {
        list[self.below(list.len())]
    }

    /// True with probability `p_percent`/100.
    fn chance(&mut self, p_percent: usize) -> bool {
        self.below(100) < p_percent
    }

    fn in_range(&mut self, (lo, hi): (u32, u32)) -> u32 {
        lo + self.below((hi - lo + 1) as usize) as u32
    }

    /// Draws the arguments and a template for one call of `spec`.
    fn call(&mut self, spec: &Spec) -> (Call, &'static str) {
        let all = devices_for(spec.function);
        let device = if all.is_empty() {
            None
        } else {
            Some(self.pick(all))
        };
        let templates: Vec<&'static str> = spec
            .groups
            .iter()
            .filter(|g| device.is_none_or(|d| g.devices.contains(&d)))
            .flat_map(|g| g.templates.iter().copied())
            .collect();
        let template = self.pick(&templates);
        let room = match device {
            Some(d) => self.pick(rooms_for(d)),
            None => self.pick(&ROOMS),
        };
        let surface = match device {
            Some(d) => self.pick(surfaces(d)),
            None => "",
        };
        let value = match spec.function {
            "set_level" => Some(self.in_range(LEVEL_RANGE)),
            "set_temperature" => Some(self.in_range(TEMPERATURE_RANGE)),
            _ => None,
        };
        let genre = (spec.function == "play").then(|| self.pick(&GENRES));
        let call = Call {
            function: spec.function,
            device,
            room,
            value,
            genre,
            surface,
        };
        (call, template)
    }

    fn slot(&mut self, name: &str, c: &Call) -> String {
        let room = spoken(c.room);
        let openable = matches!(c.device, Some("blinds" | "curtains" | "garage_door"));
        match name {
            "t" if c.device == Some("garage_door") => "the garage door".to_string(),
            "t" if self.chance(50) => format!("the {room} {}", c.surface),
            "t" => format!("the {} in the {room}", c.surface),
            "b" if c.device == Some("garage_door") => "garage door".to_string(),
            "b" => format!("{room} {}", c.surface),
            "room" => room,
            "be" => if c.plural() { "are" } else { "is" }.to_string(),
            "state" if openable => self.pick(&["open", "closed"]).to_string(),
            "state" => self.pick(&["on", "off"]).to_string(),
            "on" => if openable { "open" } else { "on" }.to_string(),
            "pct" => {
                let v = c.value.unwrap_or(0);
                match self.below(3) {
                    0 => format!("{v} percent"),
                    _ => format!("{v}%"),
                }
            }
            "deg" => {
                let v = c.value.unwrap_or(0);
                match self.below(4) {
                    0 => format!("{v}"),
                    1 => format!("{v}°C"),
                    _ => format!("{v} degrees"),
                }
            }
            "genre" => spoken(c.genre.unwrap_or("")),
            // Templates are constants of this file: an unknown slot is a bug here.
            other => panic!("unknown template slot {{{other}}}"),
        }
    }

    /// Expands `[a|b]` alternatives and `{slot}` fillers.
    fn expand(&mut self, template: &str, c: &Call) -> String {
        let mut out = String::new();
        let mut rest = template;
        while let Some(i) = rest.find(['[', '{']) {
            out.push_str(&rest[..i]);
            let close = if rest.as_bytes()[i] == b'[' { ']' } else { '}' };
            let end = match rest[i..].find(close) {
                Some(e) => i + e,
                None => panic!("unclosed {close} in template {template:?}"),
            };
            let inner = &rest[i + 1..end];
            if close == ']' {
                let alts: Vec<&str> = inner.split('|').collect();
                let alt = alts[self.below(alts.len())];
                out.push_str(&self.expand(alt, c));
            } else {
                out.push_str(&self.slot(inner, c));
            }
            rest = &rest[end + 1..];
        }
        out.push_str(rest);
        out
    }

    /// Introduces a typo into one word of at least 5 ASCII letters that is not in
    /// `protected` (the words carrying argument values): swap, drop or double a letter.
    fn typo(&mut self, text: &str, protected: &[String]) -> String {
        let words: Vec<&str> = text.split(' ').collect();
        let eligible: Vec<usize> = (0..words.len())
            .filter(|&i| {
                let w = words[i];
                w.len() >= 5
                    && w.bytes().all(|b| b.is_ascii_lowercase())
                    && !protected.iter().any(|p| p == w)
            })
            .collect();
        if eligible.is_empty() {
            return text.to_string();
        }
        let wi = eligible[self.below(eligible.len())];
        let mut w: Vec<u8> = words[wi].bytes().collect();
        let p = 1 + self.below(w.len() - 2);
        match self.below(3) {
            0 => w.swap(p, p + 1),
            1 => {
                w.remove(p);
            }
            _ => w.insert(p, w[p]),
        }
        let new_word = String::from_utf8_lossy(&w).into_owned();
        let mut out: Vec<String> = words.iter().map(|s| s.to_string()).collect();
        out[wi] = new_word;
        out.join(" ")
    }

    /// One user message for a call made from `template`.
    fn message(&mut self, template: &str, c: &Call) -> String {
        let (kind, body) = template.split_at(1);
        let core = self.expand(body, c);
        let mut text = match kind {
            "^" => match self.below(10) {
                0..=2 => format!("{core}{}", self.pick(&[".", "", "!"])),
                3 | 4 => format!("{}{core}", self.pick(PREFIXES)),
                5 | 6 => format!("{core}{}", self.pick(SUFFIXES)),
                7 | 8 => format!("{}{core}?", self.pick(ASKS)),
                _ => format!(
                    "{}{core}{}",
                    self.pick(ASKS),
                    self.pick(&[" please?", ", thanks"])
                ),
            },
            "~" if self.chance(40) => format!("{core}{}", self.pick(SUFFIXES)),
            "?" if self.chance(20) => format!("hey, {core}"),
            _ => core,
        };
        capitalize_first(&mut text);
        // Sloppiness.
        if self.chance(20) {
            text = text.to_lowercase().replace("please", "pls");
        }
        if self.chance(10) {
            text = text.trim_end_matches(['.', '?', '!']).to_string();
        }
        if self.chance(15) {
            let protected = c.protected();
            text = self.typo(&text, &protected);
        }
        text
    }
}

fn capitalize_first(s: &mut String) {
    if let Some(c) = s.chars().next() {
        let up: String = c.to_uppercase().collect();
        s.replace_range(..c.len_utf8(), &up);
    }
}

/// The exact-duplicate key of a message: lower-case words of letters and digits.
fn dedup_key(message: &str) -> String {
    message
        .to_lowercase()
        .split(|ch: char| !ch.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The example as graft-train's loader reads it.
fn example(user: &str, reply: &str) -> Example {
    let msg = |role, content: &str| Message {
        role,
        content: content.to_string(),
    };
    Example::Messages(vec![
        msg(Role::System, SYSTEM),
        msg(Role::User, user),
        msg(Role::Assistant, reply),
    ])
}

/// The shingles of the whole example, as the loader's near-duplicate check computes them.
fn example_shingles(user: &str, reply: &str) -> Vec<u64> {
    shingles(&normalized(&example(user, reply)).replace(['\u{1e}', '\u{1f}'], " "))
}

/// The set of lower-case words (runs of letters and digits) of a message.
pub fn word_set(message: &str) -> BTreeSet<String> {
    dedup_key(message).split(' ').map(str::to_string).collect()
}

/// The Jaccard similarity of two word sets.
pub fn word_overlap(a: &BTreeSet<String>, b: &BTreeSet<String>) -> f64 {
    let inter = a.intersection(b).count();
    let union = a.len() + b.len() - inter;
    if union == 0 {
        1.0
    } else {
        inter as f64 / union as f64
    }
}

/// Where graft-train's split puts the lines of an `n`-line file with [`RATIOS`] and
/// [`SPLIT_SEED`]: the 0-based line numbers of the test, val and train parts, in that
/// order. The split depends only on the line positions, so a split of placeholder records
/// tells where every line of the real file will go.
fn split_positions(n: usize) -> Vec<usize> {
    let records = (0..n)
        .map(|i| Record {
            line: i + 1,
            example: Example::Text(i.to_string()),
            raw: String::new(),
        })
        .collect();
    let split = Dataset::from_records(records).split(RATIOS, SPLIT_SEED);
    [&split.test, &split.val, &split.train]
        .iter()
        .flat_map(|part| part.records().iter().map(|r| r.line - 1))
        .collect()
}

/// One JSONL line in the `messages` shape.
fn jsonl_line(user: &str, reply: &str) -> String {
    let turn = |role: &str, content: &str| {
        format!(
            "{{\"role\":\"{role}\",\"content\":{}}}",
            serde_json::Value::String(content.to_string())
        )
    };
    format!(
        "{{\"messages\":[{},{},{}]}}",
        turn("system", SYSTEM),
        turn("user", user),
        turn("assistant", reply)
    )
}

/// The `n` examples for `seed`, as JSONL lines (without newlines) in pooled order; an error
/// when `n` is so large that the templates run out of sufficiently different requests.
///
/// Functions are used round-robin so each gets about `n / 8` examples. User messages are
/// unique after lower-casing and dropping punctuation, no two are [`MAX_SIMILARITY`]
/// similar or more (word 5-shingles) or [`MAX_WORD_OVERLAP`] similar or more (word sets),
/// and no two whole examples reach the loader's [`LOADER_NEAR_DUP`].
///
/// The pooled order is stratified for the split: the examples are shuffled, dealt into one
/// sequence that cycles through the functions (in a fresh random order each round), and the
/// k-th example of that sequence is put on the line that the split sends to the k-th place of
/// test, then val, then train. So every split, the 50-example ones included, has each
/// function within one or two examples of an eighth.
pub fn generate(n: usize, seed: u64) -> Result<Vec<String>, String> {
    let mut g = Gen {
        rng: SplitMix64::new(seed ^ 0x736d_6172_7468_6f6d),
    };
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut sets: Vec<Vec<u64>> = Vec::new();
    let mut words: Vec<BTreeSet<String>> = Vec::new();
    let mut whole: Vec<Vec<u64>> = Vec::new();
    let mut made: Vec<(usize, String)> = Vec::with_capacity(n);
    for i in 0..n {
        let f = i % SPECS.len();
        let spec = &SPECS[f];
        let mut attempts = 0;
        let (user, reply) = loop {
            let (call, template) = g.call(spec);
            let m = g.message(template, &call);
            let reply = call.reply();
            let key = dedup_key(&m);
            let set = shingles(&m);
            let ws = word_set(&m);
            let full = example_shingles(&m, &reply);
            if !seen.contains(&key)
                && sets.iter().all(|s| jaccard(s, &set) < MAX_SIMILARITY)
                && words
                    .iter()
                    .all(|w| word_overlap(w, &ws) < MAX_WORD_OVERLAP)
                && whole.iter().all(|s| jaccard(s, &full) < LOADER_NEAR_DUP)
            {
                seen.insert(key);
                sets.push(set);
                words.push(ws);
                whole.push(full);
                break (m, reply);
            }
            attempts += 1;
            if attempts >= 1000 {
                return Err(format!(
                    "example {} of {n}: 1000 new {} requests in a row were duplicates or near \
                     duplicates of earlier ones; use a smaller --n",
                    i + 1,
                    spec.function
                ));
            }
        };
        made.push((f, jsonl_line(&user, &reply)));
    }
    for i in (1..made.len()).rev() {
        let j = g.below(i + 1);
        made.swap(i, j);
    }
    // One queue per function, in shuffled order; deal them round by round.
    let mut queues: Vec<VecDeque<String>> = vec![VecDeque::new(); SPECS.len()];
    for (f, line) in made {
        queues[f].push_back(line);
    }
    let mut dealt: Vec<String> = Vec::with_capacity(n);
    while dealt.len() < n {
        let mut order: Vec<usize> = (0..SPECS.len()).collect();
        for i in (1..order.len()).rev() {
            let j = g.below(i + 1);
            order.swap(i, j);
        }
        for f in order {
            if let Some(line) = queues[f].pop_front() {
                dealt.push(line);
            }
        }
    }
    let mut lines = vec![String::new(); n];
    for (pos, line) in split_positions(n).into_iter().zip(dealt) {
        lines[pos] = line;
    }
    Ok(lines)
}

/// Generates `n` examples with `seed` and writes the 80/10/10 split into `out`. Fails when
/// graft-train's loader would drop or deduplicate any generated example.
pub fn write_dataset(out: &Path, n: usize, seed: u64) -> Result<SplitReport, String> {
    gen_support::write_split(out, &generate(n, seed)?, RATIOS, SPLIT_SEED)
}

fn main() -> std::process::ExitCode {
    gen_support::run("gen-smart-home", 500, 10, write_dataset)
}
