//! The built-in provisioner: turns an instance into access information (`appInfo`) from
//! configured templates (validated by [`crate::config`]), with a generated administrator password. It touches no external
//! system, so it is instant and safe to repeat.

use koogallery::model::saas_v2::AppInfo;

pub use crate::config::{ProvisionerTemplates as Templates, TemplateVars as Vars};
use rand::Rng;
use rand::seq::SliceRandom;

/// A 20-character password with upper case, lower case, digits and symbols, from the OS CSPRNG.
/// Symbols avoid characters that break URLs, shells or JSON (`"`, `\`, `'`, `&`, `%`, `+`).
pub fn generate_password() -> String {
    const UPPER: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
    const LOWER: &[u8] = b"abcdefghijkmnopqrstuvwxyz";
    const DIGIT: &[u8] = b"23456789";
    const SYMBOL: &[u8] = b"!@#$*-_=?";
    let mut rng = rand::rngs::OsRng;
    let all: Vec<u8> = [UPPER, LOWER, DIGIT, SYMBOL].concat();
    let mut chars: Vec<u8> = [UPPER, LOWER, DIGIT, SYMBOL]
        .iter()
        .map(|set| set[rng.gen_range(0..set.len())])
        .collect();
    while chars.len() < 20 {
        chars.push(all[rng.gen_range(0..all.len())]);
    }
    chars.shuffle(&mut rng);
    chars.into_iter().map(char::from).collect()
}

/// Provisions: the access information for an instance.
pub fn provision(t: &Templates, v: Vars<'_>) -> AppInfo {
    AppInfo {
        front_end_url: Templates::render(&t.front_end_url, &v),
        admin_url: t.admin_url.as_deref().map(|u| Templates::render(u, &v)),
        user_name: Some(Templates::render(&t.user_name, &v)),
        password: Some(generate_password()),
        memo: t.memo.as_deref().map(|m| Templates::render(m, &v)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_strong_and_different() {
        let a = generate_password();
        assert_eq!(a.len(), 20);
        assert!(a.bytes().any(|b| b.is_ascii_uppercase()));
        assert!(a.bytes().any(|b| b.is_ascii_lowercase()));
        assert!(a.bytes().any(|b| b.is_ascii_digit()));
        assert!(a.bytes().any(|b| !b.is_ascii_alphanumeric()));
        assert_ne!(a, generate_password());
    }

    #[test]
    fn templates_render() {
        let t = Templates {
            front_end_url: "https://app.example.com/t/{instance_id}".into(),
            admin_url: Some("https://admin.example.com/{order_id}".into()),
            memo: None,
            user_name: "admin".into(),
        };
        let app = provision(
            &t,
            Vars {
                instance_id: "i-1",
                order_id: "CS1",
                customer_id: "c",
            },
        );
        assert_eq!(app.front_end_url, "https://app.example.com/t/i-1");
        assert_eq!(
            app.admin_url.as_deref(),
            Some("https://admin.example.com/CS1")
        );
        assert_eq!(app.user_name.as_deref(), Some("admin"));
    }
}
