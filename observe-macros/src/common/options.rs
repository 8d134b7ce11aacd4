//! The option list of an attribute, `key`, `key = value` or `key(...)` separated by
//! commas: one loop for every macro, so "specified more than once" (at the second
//! keyword) and "unknown option … did you mean" are written once.

use syn::parse::ParseStream;
use syn::{Ident, Token};

/// The option within two edits of `word`, if any (for "did you mean").
pub fn closest<'a>(word: &str, options: &[&'a str]) -> Option<&'a str> {
    fn distance(a: &str, b: &str) -> usize {
        let b: Vec<char> = b.chars().collect();
        let mut row: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut previous = row[0];
            row[0] = i + 1;
            for (j, cb) in b.iter().enumerate() {
                let current = row[j + 1];
                row[j + 1] = if ca == *cb {
                    previous
                } else {
                    1 + previous.min(row[j]).min(current)
                };
                previous = current;
            }
        }
        row[b.len()]
    }
    options
        .iter()
        .map(|o| (distance(word, o), *o))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, o)| o)
}

/// Reads options until the input ends. For each keyword in `known`, `each` parses the
/// rest of that option (its `= value` or `(...)`) from the same stream.
pub fn parse_options(
    input: ParseStream<'_>,
    known: &[&str],
    mut each: impl FnMut(&Ident, ParseStream<'_>) -> syn::Result<()>,
) -> syn::Result<()> {
    let expected = format!(
        "expected one of {}",
        known
            .iter()
            .map(|k| format!("`{k}`"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut seen: Vec<String> = Vec::new();
    while !input.is_empty() {
        let key: Ident = input
            .call(syn::ext::IdentExt::parse_any)
            .map_err(|e| syn::Error::new(e.span(), &expected))?;
        let name = key.to_string();
        if seen.contains(&name) {
            return Err(syn::Error::new(
                key.span(),
                format!("`{name}` specified more than once"),
            ));
        }
        if !known.contains(&name.as_str()) {
            let hint = closest(&name, known)
                .map(|c| format!("did you mean `{c}`? "))
                .unwrap_or_default();
            return Err(syn::Error::new(
                key.span(),
                format!("unknown option `{name}`; {hint}{expected}"),
            ));
        }
        each(&key, input)?;
        seen.push(name);
        if input.is_empty() {
            break;
        }
        input.parse::<Token![,]>()?;
    }
    Ok(())
}
