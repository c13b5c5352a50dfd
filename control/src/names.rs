//! Hostname rules: what a replica may be called.
//!
//! Names become Docker container names and network aliases and travel in argv, so they are
//! checked once, here, before any runtime sees them. The pattern is Docker's own container-name
//! rule narrowed to at most 63 characters (a DNS label), which also keeps every name out of reach
//! of option parsing (`--privileged`) and shells (`a;b`, `$(id)`).

/// Longest accepted name: one DNS label.
pub const MAX_NAME_LEN: usize = 63;

/// Why a name is refused; the text goes into the 400 answer.
pub fn check(name: &str) -> Result<(), String> {
    let bytes = name.as_bytes();
    if bytes.len() < 2 || bytes.len() > MAX_NAME_LEN {
        return Err(format!(
            "Invalid hostname {}: it must be 2 to {MAX_NAME_LEN} characters long",
            quoted(name)
        ));
    }
    if !bytes[0].is_ascii_alphanumeric() {
        return Err(format!(
            "Invalid hostname {}: it must start with a letter or a digit",
            quoted(name)
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err(format!(
            "Invalid hostname {}: character {:?} is not allowed (use letters, digits, '_', '.', '-')",
            quoted(name),
            c
        ));
    }
    Ok(())
}

/// The name quoted for a message, with control characters escaped and long names cut.
fn quoted(name: &str) -> String {
    let short: String = name.chars().take(40).collect();
    let mut s = format!("{:?}", short);
    if name.chars().count() > 40 {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn accepts_docker_style_names() {
        for ok in ["S5", "Server-1", "web_2.internal", "a1", &"x".repeat(63)] {
            assert!(check(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_hostile_names() {
        for bad in [
            "",
            "a",
            "; rm -rf /",
            "$(reboot)",
            "--privileged",
            "-v/:/host",
            "a b",
            "../x",
            "a;b",
            "Server 1",
            "naïve",
            "a\nb",
            &"x".repeat(64),
            &"x".repeat(300),
        ] {
            assert!(check(bad).is_err(), "{bad:?}");
        }
    }
}
