//! JSON to D-Bus values by signature, and D-Bus values back to JSON.
//!
//! Arguments: the basic types and arrays of them (`s`, `o`, `u`, `i`, `x`, `t`, `b`, `as`,
//! `ao`, `au`), and the empty settings dictionary `a{sa{sv}}` (Device.Reapply's "the
//! profile as it is"): what the methods in [`signatures`](crate::signatures) take. Replies: any
//! value; object paths and strings become JSON strings, integers numbers, arrays arrays,
//! dictionaries objects (keys as text), structures arrays, variants their content.

use serde_json::{Map, Number, Value};
use zbus::zvariant::{Array, Dict, ObjectPath, Signature, Structure, StructureBuilder, Value as Z};

fn want(sig: &str, v: &Value) -> String {
    format!("argument {v} does not fit D-Bus type '{sig}'")
}

/// One argument of basic type or an array of them.
fn arg(sig: &str, v: &Value) -> Result<Z<'static>, String> {
    let int = |v: &Value| v.as_i64().ok_or_else(|| want(sig, v));
    Ok(match sig {
        "s" => Z::from(v.as_str().ok_or_else(|| want(sig, v))?.to_string()),
        "o" => {
            let s = v.as_str().ok_or_else(|| want(sig, v))?.to_string();
            Z::ObjectPath(ObjectPath::try_from(s).map_err(|e| format!("{e}"))?)
        }
        "u" => Z::U32(u32::try_from(int(v)?).map_err(|_| want(sig, v))?),
        "i" => Z::I32(i32::try_from(int(v)?).map_err(|_| want(sig, v))?),
        "x" => Z::I64(int(v)?),
        "t" => Z::U64(v.as_u64().ok_or_else(|| want(sig, v))?),
        "b" => Z::Bool(v.as_bool().ok_or_else(|| want(sig, v))?),
        "a{sa{sv}}" => empty_settings(v).ok_or_else(|| want(sig, v))?,
        s if s.len() == 2 && s.starts_with('a') => {
            let elem = &s[1..];
            let esig = Signature::try_from(elem).map_err(|e| format!("{e}"))?;
            let mut a = Array::new(&esig);
            for x in v.as_array().ok_or_else(|| want(sig, v))? {
                a.append(arg(elem, x)?).map_err(|e| format!("{e}"))?;
            }
            Z::Array(a)
        }
        other => return Err(format!("D-Bus type '{other}' is not supported here")),
    })
}

/// A connection's settings as NetworkManager takes them (`a{sa{sv}}`): only the empty
/// dictionary, `{}` in JSON (typing arbitrary variants from JSON would be guesswork).
fn empty_settings(v: &Value) -> Option<Z<'static>> {
    v.as_object().filter(|m| m.is_empty())?;
    let inner = Signature::try_from("a{sv}").ok()?;
    Some(Z::Dict(Dict::new(&Signature::Str, &inner)))
}

/// The arguments as one message body (`None`: the method takes none).
pub fn body(sigs: &[&str], args: &[Value]) -> Result<Option<Structure<'static>>, String> {
    if sigs.len() != args.len() {
        return Err(format!(
            "{} arguments given, the method takes {} ({})",
            args.len(),
            sigs.len(),
            sigs.concat()
        ));
    }
    if sigs.is_empty() {
        return Ok(None);
    }
    let mut b = StructureBuilder::new();
    for (s, a) in sigs.iter().zip(args) {
        b = b.append_field(arg(s, a)?);
    }
    b.build().map(Some).map_err(|e| format!("{e}"))
}

fn num(n: impl Into<Number>) -> Value {
    Value::Number(n.into())
}

/// A D-Bus value as JSON.
pub fn to_json(v: &Z) -> Value {
    match v {
        Z::U8(n) => num(*n),
        Z::Bool(b) => Value::Bool(*b),
        Z::I16(n) => num(*n),
        Z::U16(n) => num(*n),
        Z::I32(n) => num(*n),
        Z::U32(n) => num(*n),
        Z::I64(n) => num(*n),
        Z::U64(n) => num(*n),
        Z::F64(f) => Number::from_f64(*f).map_or(Value::Null, Value::Number),
        Z::Str(s) => Value::from(s.as_str()),
        Z::Signature(s) => Value::from(s.to_string()),
        Z::ObjectPath(p) => Value::from(p.as_str()),
        Z::Value(inner) => to_json(inner),
        Z::Array(a) => Value::Array(a.inner().iter().map(to_json).collect()),
        Z::Dict(d) => {
            let mut m = Map::new();
            for (k, x) in d.iter() {
                let key = match to_json(k) {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                m.insert(key, to_json(x));
            }
            Value::Object(m)
        }
        Z::Structure(s) => Value::Array(s.fields().iter().map(to_json).collect()),
        _ => Value::Null, // file descriptors: never in NetworkManager's replies we read
    }
}

/// A reply's values in order.
pub fn reply(msg: &zbus::Message) -> Result<Vec<Value>, String> {
    let body = msg.body();
    if body.is_empty() {
        return Ok(Vec::new());
    }
    let s: Structure = body.deserialize().map_err(|e| format!("{e}"))?;
    Ok(s.fields().iter().map(to_json).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn arguments_are_typed_by_signature_and_read_back() {
        let b = body(
            &["ao", "u", "u"],
            &[
                json!(["/org/freedesktop/NetworkManager/Devices/2"]),
                json!(60),
                json!(2),
            ],
        )
        .unwrap()
        .unwrap();
        assert_eq!(b.signature().to_string(), "(aouu)");
        assert_eq!(
            to_json(&Z::Structure(b)),
            json!([["/org/freedesktop/NetworkManager/Devices/2"], 60, 2])
        );
        let empty = body(&["ao"], &[json!([])]).unwrap().unwrap();
        assert_eq!(empty.signature().to_string(), "(ao)");
        assert_eq!(body(&[], &[]).unwrap(), None);
    }

    #[test]
    fn arguments_that_do_not_fit_are_refused() {
        assert!(body(&["o"], &[json!("not a path")]).is_err());
        assert!(body(&["u"], &[json!(-1)]).is_err());
        assert!(body(&["s"], &[json!(1)]).is_err());
        assert!(body(&["s", "s"], &[json!("a")]).is_err());
        assert!(body(&["a{sv}"], &[json!({})]).is_err());
        assert!(body(&["a{sa{sv}}"], &[json!({"ipv4": {}})]).is_err());
        assert!(body(&["a{sa{sv}}"], &[json!([])]).is_err());
    }

    #[test]
    fn reapply_takes_the_empty_settings_dictionary() {
        let b = body(&["a{sa{sv}}", "t", "u"], &[json!({}), json!(0), json!(0)])
            .unwrap()
            .unwrap();
        assert_eq!(b.signature().to_string(), "(a{sa{sv}}tu)");
        assert_eq!(to_json(&Z::Structure(b)), json!([{}, 0, 0]));
    }

    #[test]
    fn replies_become_json() {
        let v = Z::new(7u32); // a variant holding a u32
        assert_eq!(to_json(&v), json!(7));
        let mut d = std::collections::HashMap::new();
        d.insert(
            "/org/freedesktop/NetworkManager/Devices/2".to_string(),
            0u32,
        );
        assert_eq!(
            to_json(&Z::from(d)),
            json!({"/org/freedesktop/NetworkManager/Devices/2": 0})
        );
    }
}
