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
}
