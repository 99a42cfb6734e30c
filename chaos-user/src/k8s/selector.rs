//! Kubernetes label selectors, as `kubectl get -l` takes them: `app=web`, `app==web`,
//! `tier!=cache`, `env in (prod,staging)`, `env notin (dev)`, `canary`, `!canary`, joined by
//! commas (all must hold). The grammar is Kubernetes' own (k8s.io/apimachinery labels.Parse).

use std::collections::HashMap;

/// One requirement of a selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

/// Every requirement must hold (an empty selector matches everything).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector(pub Vec<Requirement>);

impl Requirement {
    fn matches(&self, labels: &HashMap<String, String>) -> bool {
        match self {
            Self::Equals(k, v) => labels.get(k) == Some(v),
            // As in Kubernetes: a missing key satisfies != and notin.
            Self::NotEquals(k, v) => labels.get(k) != Some(v),
            Self::In(k, vs) => labels.get(k).is_some_and(|l| vs.contains(l)),
            Self::NotIn(k, vs) => labels.get(k).is_none_or(|l| !vs.contains(l)),
            Self::Exists(k) => labels.contains_key(k),
            Self::DoesNotExist(k) => !labels.contains_key(k),
        }
    }
}

impl Selector {
    pub fn matches(&self, labels: &HashMap<String, String>) -> bool {
        self.0.iter().all(|r| r.matches(labels))
    }

    /// The equality requirements, which a CRI runtime can filter on itself
    /// (`PodSandboxFilter.label_selector` is a map of equalities).
    pub fn equalities(&self) -> HashMap<String, String> {
        self.0
            .iter()
            .filter_map(|r| match r {
                Requirement::Equals(k, v) => Some((k.clone(), v.clone())),
                _ => None,
            })
            .collect()
    }

    /// From a map, as experiment files write it (`selector: {app: web}`): equalities only.
    pub fn from_map(m: &HashMap<String, String>) -> Self {
        let mut reqs: Vec<Requirement> = m
            .iter()
            .map(|(k, v)| Requirement::Equals(k.clone(), v.clone()))
            .collect();
        reqs.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
        Selector(reqs)
    }
}

/// kubectl's form, which `parse` takes back.
impl std::fmt::Display for Selector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|r| match r {
                Requirement::Equals(k, v) => format!("{k}={v}"),
                Requirement::NotEquals(k, v) => format!("{k}!={v}"),
                Requirement::In(k, vs) => format!("{k} in ({})", vs.join(",")),
                Requirement::NotIn(k, vs) => format!("{k} notin ({})", vs.join(",")),
                Requirement::Exists(k) => k.clone(),
                Requirement::DoesNotExist(k) => format!("!{k}"),
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

impl std::str::FromStr for Selector {
    type Err = String;

    /// Errors say which part is wrong and show the forms that work.
    fn from_str(s: &str) -> Result<Self, String> {
        let mut reqs = Vec::new();
        for part in split_top(s) {
            let part = part.trim();
            if part.is_empty() {
                return Err(format!(
                    "empty requirement in '{s}'; use KEY=VALUE, KEY!=VALUE, 'KEY in (A,B)', \
                     'KEY notin (A)', KEY or !KEY, joined by commas"
                ));
            }
            reqs.push(requirement(part)?);
        }
        if reqs.is_empty() {
            return Err("an empty selector would match every pod; give KEY=VALUE".into());
        }
        Ok(Selector(reqs))
    }
}

/// Splits at commas outside parentheses.
fn split_top(s: &str) -> Vec<&str> {
    let (mut parts, mut depth, mut from) = (Vec::new(), 0i32, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&s[from..i]);
                from = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[from..]);
    parts
}

fn requirement(part: &str) -> Result<Requirement, String> {
    let word = |w: &str| -> Result<String, String> {
        let w = w.trim();
        let ok = !w.is_empty()
            && w.len() <= 317
            && w.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c));
        if ok {
            Ok(w.to_string())
        } else {
            Err(format!(
                "'{w}' is not a label key or value (letters, digits, - _ . /) in '{part}'"
            ))
        }
    };
    if let Some((k, v)) = part.split_once("!=") {
        return Ok(Requirement::NotEquals(word(k)?, word(v)?));
    }
    if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
        return Ok(Requirement::Equals(word(k)?, word(v)?));
    }
    for (op, notin) in [(" notin ", true), (" in ", false)] {
        if let Some((k, set)) = part.split_once(op) {
            let set = set.trim();
            let inner = set
                .strip_prefix('(')
                .and_then(|x| x.strip_suffix(')'))
                .ok_or_else(|| {
                    format!("'{part}': the set needs parentheses, e.g. 'env in (prod,staging)'")
                })?;
            let values = inner.split(',').map(word).collect::<Result<Vec<_>, _>>()?;
            let k = word(k)?;
            return Ok(if notin {
                Requirement::NotIn(k, values)
            } else {
                Requirement::In(k, values)
            });
        }
    }
    match part.strip_prefix('!') {
        Some(k) => Ok(Requirement::DoesNotExist(word(k)?)),
        None => Ok(Requirement::Exists(word(part)?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(kv: &[(&str, &str)]) -> HashMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_every_form() {
        let s: Selector = "app=web,tier!=cache,env in (prod, staging),zone notin (b),canary,!debug"
            .parse()
            .expect("parses");
        use Requirement::*;
        assert_eq!(
            s.0,
            vec![
                Equals("app".into(), "web".into()),
                NotEquals("tier".into(), "cache".into()),
                In("env".into(), vec!["prod".into(), "staging".into()]),
                NotIn("zone".into(), vec!["b".into()]),
                Exists("canary".into()),
                DoesNotExist("debug".into()),
            ]
        );
        assert_eq!(s.equalities(), labels(&[("app", "web")]));
        let back: Selector = s.to_string().parse().expect("its own text parses");
        assert_eq!(back, s);
    }

    #[test]
    fn matches_as_kubernetes_does() {
        let s: Selector = "app=web,env in (prod,staging),tier!=cache"
            .parse()
            .expect("parses");
        assert!(s.matches(&labels(&[("app", "web"), ("env", "prod")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("env", "dev")])));
        assert!(!s.matches(&labels(&[
            ("app", "web"),
            ("env", "prod"),
            ("tier", "cache")
        ])));
        assert!(!s.matches(&labels(&[("env", "prod")])));
        let notin: Selector = "env notin (dev)".parse().expect("parses");
        assert!(notin.matches(&labels(&[])), "a missing key satisfies notin");
    }

    #[test]
    fn bad_selectors_say_what_is_wrong() {
        for bad in ["", "app=", "a=b,,c=d", "env in prod", "app=we b"] {
            let e = bad.parse::<Selector>().expect_err(bad);
            assert!(!e.is_empty(), "{bad}");
        }
    }
}
