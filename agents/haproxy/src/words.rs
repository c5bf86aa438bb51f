//! `extra_args` split into argv words the way a shell would split them, without a shell: quotes
//! and backslashes group, nothing is expanded, nothing is executed.

/// Split `s` into words. Single quotes keep everything literally, double quotes keep everything
/// but `\"` and `\\`, a backslash outside quotes escapes the next character. Errors say what is
/// unbalanced.
pub fn split(s: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err("has an unclosed single quote".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\')) => word.push(c),
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err("has an unclosed double quote".into()),
                        },
                        Some(c) => word.push(c),
                        None => return Err("has an unclosed double quote".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(c) => word.push(c),
                    None => return Err("ends with a lone backslash".into()),
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::split;
    use proptest::prelude::*;

    #[test]
    fn plain_words() {
        assert_eq!(
            split("  -L  node1 -dR ").unwrap(),
            vec!["-L", "node1", "-dR"]
        );
        assert!(split("").unwrap().is_empty());
    }

    #[test]
    fn quotes_group_and_nothing_expands() {
        assert_eq!(
            split(r#"-f '/etc/my lb.cfg' "$HOME" a\ b "x\"y" ''"#).unwrap(),
            vec!["-f", "/etc/my lb.cfg", "$HOME", "a b", "x\"y", ""]
        );
        assert_eq!(split("; rm -rf /").unwrap(), vec![";", "rm", "-rf", "/"]);
    }

    #[test]
    fn unbalanced_is_an_error() {
        assert!(split("'open").is_err());
        assert!(split("\"open").is_err());
        assert!(split("x\\").is_err());
    }

    /// `word` as a shell would need it written: single-quoted, a single quote as `'\''`.
    fn quoted(word: &str) -> String {
        format!("'{}'", word.replace('\'', r"'\''"))
    }

    proptest! {
        #[test]
        fn any_text_splits_or_says_why_without_panic(text in "(?s).{0,200}") {
            match split(&text) {
                Ok(words) => prop_assert!(words.len() <= text.len()),
                Err(why) => prop_assert!(!why.is_empty()),
            }
        }

        #[test]
        fn quoted_words_come_back_as_they_were(
            words in prop::collection::vec("(?s).{0,20}", 0..6),
            gaps in prop::collection::vec("[ \t\n]{1,3}", 6),
        ) {
            let mut line = String::new();
            for (word, gap) in words.iter().zip(gaps.iter()) {
                line.push_str(&quoted(word));
                line.push_str(gap);
            }
            prop_assert_eq!(split(&line).map_err(TestCaseError::fail)?, words);
        }

        #[test]
        fn plain_words_need_no_quotes(words in prop::collection::vec("[A-Za-z0-9_./:@=,+-]{1,12}", 0..8)) {
            prop_assert_eq!(split(&words.join(" ")).map_err(TestCaseError::fail)?, words);
        }
    }
}
