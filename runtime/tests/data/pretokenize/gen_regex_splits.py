"""Reference splits for graft's pre-tokenizer tests, from the original regexes run by the
PyPI `regex` module (a real backtracking engine with Unicode classes).

Usage: python3 gen_regex_splits.py > regex_splits.json  (run from this directory)
Texts: the llama.cpp tokenizer golden texts plus a few extra edge cases.
"""
import json
import sys

import regex

PATTERNS = {
    "gpt2": r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)",
    "llama3": r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
    "qwen2": r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
}

EXTRA = [
    "x  1", "a   b", "  \n\n  x", "it's IT'S It'Ll", "tab\t\tend\t", "\r\n\r\nwin",
    "1234567 89", "٣٤٥ numerals", "über-cool!!!\n", "emoji🙂🙂 text", "   ",
]


def split(pattern, text):
    out, pos = [], 0
    for m in regex.finditer(pattern, text):
        if m.start() > pos:
            out.append(text[pos:m.start()])
        if m.end() > m.start():
            out.append(m.group())
        pos = m.end()
    if pos < len(text):
        out.append(text[pos:])
    return out


def main():
    with open("../llama/tokenizer_golden.json", encoding="utf-8") as f:
        texts = [c["text"] for c in json.load(f)["cases"]] + EXTRA
    cases = [{"text": t, **{k: split(p, t) for k, p in PATTERNS.items()}} for t in texts]
    json.dump({"generator": "gen_regex_splits.py", "regex": regex.__version__, "cases": cases},
              sys.stdout, ensure_ascii=False, indent=0)


main()
