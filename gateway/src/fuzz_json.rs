//! Test-only: JSON documents for the fuzz targets of the uplink parser and the HTTP bodies.
//! Random bytes seldom make a JSON object with the right field names, so these are made of a
//! target's own field names and words (and any other), with values of every JSON type, repeated
//! keys, bare values and bytes after the document: the fuzzer reaches the field checks, not
//! only the syntax errors.

use bolero::{produce, TypeGenerator, ValueGenerator};

/// Short strings and lists: a document of a few fields is what reaches the checks; thousands of
/// them only slow the fuzzer down.
fn short_text() -> impl ValueGenerator<Output = String> {
    produce::<String>().with().len(0usize..24)
}

/// What a target gives its documents: its field names and the strings it gives a meaning to.
pub(crate) struct Vocabulary {
    pub keys: &'static [&'static str],
    pub words: &'static [&'static str],
}

impl Vocabulary {
    fn pick<'a>(list: &'a [&'a str], i: u8) -> &'a str {
        list.get(usize::from(i) % list.len().max(1))
            .copied()
            .unwrap_or("")
    }
}

/// A field name: mostly one of the target's own (15 in 16), else any.
#[derive(Debug, TypeGenerator)]
pub(crate) struct Key {
    pick: u8,
    #[generator(short_text())]
    other: String,
}

#[derive(Debug, TypeGenerator)]
pub(crate) enum Scalar {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Wide(i128),
    Float(f64),
    Word(u8),
    Text(#[generator(short_text())] String),
}

#[derive(Debug, TypeGenerator)]
pub(crate) enum Value {
    Scalar(Scalar),
    List(#[generator(produce::<Vec<Scalar>>().with().len(0usize..6))] Vec<Scalar>),
    Object(#[generator(produce::<Vec<(Key, Scalar)>>().with().len(0usize..6))] Vec<(Key, Scalar)>),
}

/// An object of fields, or a bare value, and sometimes something after it.
#[derive(Debug, TypeGenerator)]
pub(crate) struct Document {
    #[generator(produce::<Vec<(Key, Value)>>().with().len(0usize..6))]
    fields: Vec<(Key, Value)>,
    bare: Option<Value>,
    after: Option<String>,
}

impl Document {
    pub(crate) fn render(&self, v: &Vocabulary) -> String {
        let mut out = String::new();
        match &self.bare {
            Some(value) => value.render(v, &mut out),
            None => object(&self.fields, v, &mut out, Value::render),
        }
        if let Some(after) = &self.after {
            out.push_str(after);
        }
        out
    }
}

impl Key {
    fn render(&self, v: &Vocabulary, out: &mut String) {
        match self.pick {
            0..=239 => out.push_str(&quoted(Vocabulary::pick(v.keys, self.pick))),
            _ => out.push_str(&quoted(&self.other)),
        }
    }
}

impl Scalar {
    fn render(&self, v: &Vocabulary, out: &mut String) {
        match self {
            Scalar::Null => out.push_str("null"),
            Scalar::Bool(b) => out.push_str(&b.to_string()),
            Scalar::Int(n) => out.push_str(&n.to_string()),
            Scalar::UInt(n) => out.push_str(&n.to_string()),
            Scalar::Wide(n) => out.push_str(&n.to_string()),
            // NaN and the infinities come out as text that is not JSON: to be refused.
            Scalar::Float(f) => out.push_str(&f.to_string()),
            Scalar::Word(i) => out.push_str(&quoted(Vocabulary::pick(v.words, *i))),
            Scalar::Text(s) => out.push_str(&quoted(s)),
        }
    }
}

impl Value {
    fn render(&self, v: &Vocabulary, out: &mut String) {
        match self {
            Value::Scalar(s) => s.render(v, out),
            Value::List(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.render(v, out);
                }
                out.push(']');
            }
            Value::Object(fields) => object(fields, v, out, Scalar::render),
        }
    }
}

fn object<T>(
    fields: &[(Key, T)],
    v: &Vocabulary,
    out: &mut String,
    render: fn(&T, &Vocabulary, &mut String),
) {
    out.push('{');
    for (i, (key, value)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        key.render(v, out);
        out.push(':');
        render(value, v, out);
    }
    out.push('}');
}

fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}
