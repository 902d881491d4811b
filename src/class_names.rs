//! Class names: the training code's `class.txt` (a Python dict literal `{'name': 0, ...}`),
//! a JSON object or array, a Python list literal, or one name per line.

use crate::error::{Error, Result};
use std::collections::HashMap;
use std::path::Path;

/// Reads and parses a class-names file; errors name the file.
pub fn load(path: &Path) -> Result<Vec<String>> {
    let bytes = std::fs::read(path).map_err(|e| {
        Error::Config(format!(
            "cannot read class names file {}: {e}",
            path.display()
        ))
    })?;
    let text = String::from_utf8(bytes).map_err(|_| {
        Error::Config(format!(
            "class names file {} is not UTF-8 text",
            path.display()
        ))
    })?;
    parse(&text).map_err(|e| Error::Config(format!("class names file {}: {e}", path.display())))
}

/// Parses class names from text in any supported format, index order.
pub fn parse(text: &str) -> std::result::Result<Vec<String>, String> {
    let text = text.trim_start_matches('\u{feff}').trim();
    let names = if text.starts_with('{') {
        let mut p = Parser::new(text);
        let entries = p.dict()?;
        p.end()?;
        names_from_dict(entries)?
    } else if text.starts_with('[') {
        let mut p = Parser::new(text);
        let items = p.list()?;
        p.end()?;
        items
            .into_iter()
            .enumerate()
            .map(|(i, lit)| match lit {
                Literal::Str(s) => Ok(s),
                Literal::Int(n) => Err(format!("list item {i} is the number {n}, expected a name")),
            })
            .collect::<std::result::Result<Vec<_>, _>>()?
    } else {
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect()
    };
    if names.is_empty() {
        return Err("no class names found".into());
    }
    let mut seen = HashMap::new();
    for (i, n) in names.iter().enumerate() {
        if n.is_empty() {
            return Err(format!("class {i} has an empty name"));
        }
        if let Some(j) = seen.insert(n.as_str(), i) {
            return Err(format!(
                "duplicate class name \"{n}\" at indices {j} and {i}"
            ));
        }
    }
    Ok(names)
}

/// `{name: index}` (the training code's form) or `{index: name}`; indices must be 0..N-1.
fn names_from_dict(entries: Vec<(Literal, Literal)>) -> std::result::Result<Vec<String>, String> {
    let mut pairs = Vec::with_capacity(entries.len());
    for (k, v) in entries {
        match (k, v) {
            (Literal::Str(name), Literal::Int(i)) | (Literal::Int(i), Literal::Str(name)) => {
                pairs.push((i, name))
            }
            (k, v) => return Err(format!("expected name: index pairs, got {k:?}: {v:?}")),
        }
    }
    let n = pairs.len();
    let mut sorted: Vec<i64> = pairs.iter().map(|(i, _)| *i).collect();
    sorted.sort_unstable();
    // Class indices are the model's output positions: a file numbered from 1 would shift every
    // name by one and still "work".
    if n > 0 && sorted.iter().copied().eq(1..=n as i64) {
        return Err(format!(
            "the indices run 1..{n}, but class indices are the model's output positions and \
             start at 0: subtract 1 from each"
        ));
    }
    let mut slots: Vec<Option<String>> = vec![None; n];
    for (i, name) in pairs {
        if i < 0 || i as usize >= n {
            let missing: Vec<String> = (0..n as i64)
                .filter(|k| sorted.binary_search(k).is_err())
                .take(5)
                .map(|k| k.to_string())
                .collect();
            return Err(format!(
                "no class has index {}, so index {i} of \"{name}\" is out of range: {n} classes \
                 need each index 0..{} once",
                missing.join(", "),
                n - 1
            ));
        }
        if let Some(prev) = &slots[i as usize] {
            return Err(format!(
                "index {i} is used twice (\"{prev}\" and \"{name}\")"
            ));
        }
        slots[i as usize] = Some(name);
    }
    // n entries with distinct in-range indices fill every slot, so none is left empty.
    Ok(slots.into_iter().map(|s| s.unwrap_or_default()).collect())
}

#[derive(Debug)]
enum Literal {
    Str(String),
    Int(i64),
}

/// A tiny parser for the subset of Python literals a class file uses (also valid JSON).
struct Parser<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn new(s: &'a str) -> Self {
        Parser { s, pos: 0 }
    }

    fn peek(&self) -> Option<char> {
        self.s[self.pos..].chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn skip_ws(&mut self) {
        while let Some(c) = self.peek() {
            if c.is_whitespace() {
                self.bump();
            } else if c == '#' {
                while let Some(c) = self.bump() {
                    if c == '\n' {
                        break;
                    }
                }
            } else {
                break;
            }
        }
    }

    fn err(&self, what: &str) -> String {
        let line = self.s[..self.pos].matches('\n').count() + 1;
        let found = self
            .peek()
            .map_or("end of file".to_owned(), |c| format!("'{c}'"));
        format!("line {line}: expected {what}, found {found}")
    }

    fn expect(&mut self, c: char) -> std::result::Result<(), String> {
        self.skip_ws();
        if self.peek() == Some(c) {
            self.bump();
            Ok(())
        } else {
            Err(self.err(&format!("'{c}'")))
        }
    }

    fn end(&mut self) -> std::result::Result<(), String> {
        self.skip_ws();
        match self.peek() {
            None => Ok(()),
            Some(_) => Err(self.err("end of input")),
        }
    }

    /// Items separated by commas, optional trailing comma, until `close`.
    fn seq<T>(
        &mut self,
        close: char,
        mut item: impl FnMut(&mut Self) -> std::result::Result<T, String>,
    ) -> std::result::Result<Vec<T>, String> {
        let mut out = Vec::new();
        loop {
            self.skip_ws();
            if self.peek() == Some(close) {
                self.bump();
                return Ok(out);
            }
            out.push(item(self)?);
            self.skip_ws();
            match self.peek() {
                Some(',') => {
                    self.bump();
                }
                Some(c) if c == close => {}
                _ => return Err(self.err(&format!("',' or '{close}'"))),
            }
        }
    }

    fn dict(&mut self) -> std::result::Result<Vec<(Literal, Literal)>, String> {
        self.expect('{')?;
        self.seq('}', |p| {
            let k = p.literal()?;
            p.expect(':')?;
            let v = p.literal()?;
            Ok((k, v))
        })
    }

    fn list(&mut self) -> std::result::Result<Vec<Literal>, String> {
        self.expect('[')?;
        self.seq(']', |p| p.literal())
    }

    fn literal(&mut self) -> std::result::Result<Literal, String> {
        self.skip_ws();
        match self.peek() {
            Some(q @ ('\'' | '"')) => {
                self.bump();
                self.string(q).map(Literal::Str)
            }
            Some(c) if c == '-' || c.is_ascii_digit() => {
                let start = self.pos;
                self.bump();
                while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                    self.bump();
                }
                self.s[start..self.pos]
                    .parse()
                    .map(Literal::Int)
                    .map_err(|_| self.err("an integer"))
            }
            _ => Err(self.err("a quoted name or an integer")),
        }
    }

    fn string(&mut self, quote: char) -> std::result::Result<String, String> {
        let mut out = String::new();
        loop {
            match self.bump() {
                None => return Err(self.err("closing quote")),
                Some(c) if c == quote => return Ok(out),
                Some('\\') => match self.bump() {
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some('r') => out.push('\r'),
                    Some('/') => out.push('/'),
                    Some('u') => out.push(self.hex_escape(4)?),
                    Some('x') => out.push(self.hex_escape(2)?),
                    Some('U') => out.push(self.hex_escape(8)?),
                    Some(c @ ('\\' | '\'' | '"')) => out.push(c),
                    _ => return Err(self.err("a valid escape")),
                },
                Some(c) => out.push(c),
            }
        }
    }

    fn hex_escape(&mut self, digits: usize) -> std::result::Result<char, String> {
        let start = self.pos;
        for _ in 0..digits {
            if !self.peek().is_some_and(|c| c.is_ascii_hexdigit()) {
                return Err(self.err("hex digits"));
            }
            self.bump();
        }
        let code = u32::from_str_radix(&self.s[start..self.pos], 16).map_err(|e| e.to_string())?;
        // JSON writes astral characters as a \uD8xx\uDCxx surrogate pair.
        if (0xD800..0xDC00).contains(&code) && self.s[self.pos..].starts_with("\\u") {
            self.pos += 2;
            let lo_start = self.pos;
            for _ in 0..4 {
                if !self.peek().is_some_and(|c| c.is_ascii_hexdigit()) {
                    return Err(self.err("hex digits"));
                }
                self.bump();
            }
            let lo =
                u32::from_str_radix(&self.s[lo_start..self.pos], 16).map_err(|e| e.to_string())?;
            let c = 0x10000 + ((code - 0xD800) << 10) + (lo.wrapping_sub(0xDC00) & 0x3FF);
            return char::from_u32(c).ok_or_else(|| self.err("a valid code point"));
        }
        char::from_u32(code).ok_or_else(|| self.err("a valid code point"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_dict_with_chinese_names_in_any_order() {
        let t = "{'可回收物_塑料瓶': 1, '有害垃圾_杀虫剂': 0,\n \"厨余垃圾_果皮\": 2,}";
        assert_eq!(
            parse(t).unwrap(),
            ["有害垃圾_杀虫剂", "可回收物_塑料瓶", "厨余垃圾_果皮"]
        );
    }

    #[test]
    fn json_forms_and_lines() {
        assert_eq!(parse(r#"{"a": 1, "b": 0}"#).unwrap(), ["b", "a"]);
        assert!(parse(r#"{"0": "x"}"#).unwrap_err().contains("name: index"));
        assert_eq!(parse(r#"{0: "x", 1: "y"}"#).unwrap(), ["x", "y"]);
        assert_eq!(parse(r#"["x", "y\u00e9", 'z']"#).unwrap(), ["x", "yé", "z"]);
        assert_eq!(
            parse("\u{feff}cat\r\ndog\n\n  fish  \n").unwrap(),
            ["cat", "dog", "fish"]
        );
    }

    #[test]
    fn gaps_duplicates_and_garbage_are_errors() {
        assert_eq!(
            parse("{'a': 0, 'b': 2}").unwrap_err(),
            "no class has index 1, so index 2 of \"b\" is out of range: 2 classes need each \
             index 0..1 once"
        );
        // 146 classes with index 57 missing: the gap is named, not just the overflow.
        let gap: Vec<String> = (0..147)
            .filter(|&i| i != 57)
            .map(|i| format!("'c{i}': {i}"))
            .collect();
        let err = parse(&format!("{{{}}}", gap.join(", "))).unwrap_err();
        assert!(
            err.starts_with("no class has index 57, so index 146"),
            "{err}"
        );
        let one_based = parse("{'a': 1, 'b': 2, 'c': 3}").unwrap_err();
        assert!(one_based.contains("the indices run 1..3"), "{one_based}");
        assert!(one_based.contains("subtract 1 from each"), "{one_based}");
        assert!(parse("{'a': 0, 'b': 0}")
            .unwrap_err()
            .contains("used twice"));
        assert!(parse("a\nb\na").unwrap_err().contains("duplicate"));
        assert!(parse("{'a': 0").unwrap_err().contains("expected"));
        assert!(parse("['a', 3]").unwrap_err().contains("number"));
        assert!(parse("").unwrap_err().contains("no class names"));
        assert!(parse("{}").unwrap_err().contains("no class names"));
    }
}
