//! Writing Open311 answers in both of the specification's formats from one description of the
//! content, so JSON and XML cannot drift apart.
//!
//! JSON is an array of objects with every field present (`null` when there is no value, as in
//! the specification's examples). XML is `<?xml …?><root><item><field>…` with the
//! specification's element names; a field without a value is left out rather than written as an
//! empty element, because XML::Simple (FixMyStreet's parser) reads `<status_notes/>` as a hash
//! and would show it to residents as `HASH(0x…)`. The XML is written by hand with a small
//! escaper: the documents are flat and an XML crate would cost more than it saves.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use super::dates::format_w3c;
use super::error::Open311Error;
use super::model::{
    CreatedRequest, PostedUpdate, RequestUpdate, Service, ServiceRequest, MISSED_COLLECTION,
    MISSED_COLLECTION_ATTRIBUTE, MISSED_COLLECTION_CODE, SERVICE_GROUP,
};
use chrono_tz::Tz;

/// The format a client asked for with the resource's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `.json`: `application/json`.
    Json,
    /// `.xml`: `text/xml`, the specification's required format.
    Xml,
}

impl Format {
    /// Splits `refuse.json` into `("refuse", Json)`; `None` for any other extension.
    pub fn split(file: &str) -> Option<(&str, Format)> {
        let (stem, extension) = file.rsplit_once('.')?;
        let format = match extension {
            "json" => Format::Json,
            "xml" => Format::Xml,
            _ => return None,
        };
        Some((stem, format))
    }

    /// The format a path asks for: XML if it ends in `.xml`, else JSON.
    pub fn of_path(path: &str) -> Format {
        if path.ends_with(".xml") {
            Format::Xml
        } else {
            Format::Json
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json; charset=utf-8",
            Format::Xml => "text/xml; charset=utf-8",
        }
    }
}

/// A field's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Text.
    Text(String),
    /// A decimal number (coordinates); a non-finite one is written as no value.
    Number(f64),
    /// A whole number (error codes).
    Integer(u64),
    /// `true` or `false`.
    Bool(bool),
    /// No value.
    Absent,
}

impl From<Option<String>> for Value {
    fn from(value: Option<String>) -> Self {
        value.map_or(Value::Absent, Value::Text)
    }
}

impl From<&str> for Value {
    fn from(value: &str) -> Self {
        Value::Text(value.to_owned())
    }
}

/// One object (JSON) or element (XML) with its fields in order.
pub type Item = Vec<(&'static str, Value)>;

/// A list document: a JSON array of `items`, or `<root><element>…</element>…</root>`.
pub fn list(format: Format, root: &str, element: &str, items: &[Item]) -> String {
    match format {
        Format::Json => {
            let array = items.iter().map(json_object).collect();
            serde_json::Value::Array(array).to_string()
        }
        Format::Xml => {
            let mut xml = Xml::new(root);
            for item in items {
                xml.open(element);
                xml.fields(item);
                xml.close(element);
            }
            xml.finish(root)
        }
    }
}

/// An answer with `status` and a body in `format`.
pub fn respond(format: Format, status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, format.content_type())],
        body,
    )
        .into_response()
}

/// The service list: the missed-bin services, the missed-collection one, then heating. With
/// `waste_only`, every missed-bin service's keywords end in `waste_only`, which FixMyStreet's
/// service import reads as "offer this on the waste pages only"; heating is not waste, so its
/// keywords never do.
pub fn services(format: Format, waste_only: bool) -> String {
    let mut items: Vec<Item> = Service::bins()
        .map(|service| service_item(service, waste_only))
        .collect();
    items.push(missed_collection_item(waste_only));
    items.push(service_item(Service::heating(), false));
    list(format, "services", "service", &items)
}

fn keywords(base: &str, waste_only: bool) -> String {
    if waste_only {
        format!("{base}, waste_only")
    } else {
        base.to_owned()
    }
}

/// The single missed-collection service, whose definition has the bin as an attribute.
fn missed_collection_item(waste_only: bool) -> Item {
    let (name, description, words) = MISSED_COLLECTION;
    vec![
        ("service_code", MISSED_COLLECTION_CODE.into()),
        ("service_name", name.into()),
        ("description", description.into()),
        ("metadata", Value::Bool(true)),
        ("type", "realtime".into()),
        ("keywords", Value::Text(keywords(words, waste_only))),
        ("group", SERVICE_GROUP.into()),
    ]
}

/// The missed-collection service's definition: one required attribute, the bin, a list of the
/// streams' codes. Its `automated` (FixMyStreet's extension) is `hidden_field`: the waste pages
/// fill it from the bin the resident picked.
pub fn missed_collection_definition(format: Format) -> String {
    let values: Vec<(&str, &str)> = Service::bins()
        .map(|service| (service.code(), service.name))
        .collect();
    let description = "The bin that was not emptied";
    match format {
        Format::Json => serde_json::json!({
            "service_code": MISSED_COLLECTION_CODE,
            "attributes": [{
                "variable": true,
                "code": MISSED_COLLECTION_ATTRIBUTE,
                "datatype": "singlevaluelist",
                "required": true,
                "datatype_description": "One of the bin streams' codes",
                "order": 1,
                "description": description,
                "automated": "hidden_field",
                "values": values
                    .iter()
                    .map(|(key, name)| serde_json::json!({"key": key, "name": name}))
                    .collect::<Vec<_>>(),
            }],
        })
        .to_string(),
        Format::Xml => {
            let mut xml = Xml::new("service_definition");
            xml.fields(&[("service_code", MISSED_COLLECTION_CODE.into())]);
            xml.open("attributes");
            xml.open("attribute");
            xml.fields(&[
                ("variable", Value::Bool(true)),
                ("code", MISSED_COLLECTION_ATTRIBUTE.into()),
                ("datatype", "singlevaluelist".into()),
                ("required", Value::Bool(true)),
                (
                    "datatype_description",
                    "One of the bin streams' codes".into(),
                ),
                ("order", Value::Integer(1)),
                ("description", description.into()),
                ("automated", "hidden_field".into()),
            ]);
            xml.open("values");
            for (key, name) in values {
                xml.open("value");
                xml.fields(&[("key", key.into()), ("name", name.into())]);
                xml.close("value");
            }
            xml.close("values");
            xml.close("attribute");
            xml.close("attributes");
            xml.finish("service_definition")
        }
    }
}

fn service_item(service: Service, waste_only: bool) -> Item {
    let keywords = keywords(service.keywords, waste_only);
    vec![
        ("service_code", service.code().into()),
        ("service_name", service.name.into()),
        ("description", service.description.into()),
        // No service needs extra attributes, so clients never need the definition call.
        ("metadata", Value::Bool(false)),
        // The id comes back in the POST's answer.
        ("type", "realtime".into()),
        ("keywords", Value::Text(keywords)),
        ("group", service.group.into()),
    ]
}

/// A per-stream (or the heating) service's definition: no attributes (`metadata` is false for each).
pub fn service_definition(format: Format, service: Service) -> String {
    match format {
        Format::Json => serde_json::json!({
            "service_code": service.code(),
            "attributes": [],
        })
        .to_string(),
        Format::Xml => {
            let mut xml = Xml::new("service_definition");
            xml.fields(&[("service_code", service.code().into())]);
            xml.open("attributes");
            xml.close("attributes");
            xml.finish("service_definition")
        }
    }
}

/// The answer to a POST: one request with its new id.
pub fn created(format: Format, created: &CreatedRequest) -> String {
    let item = vec![
        ("service_request_id", created.id.as_str().into()),
        ("service_notice", created.service_notice.clone().into()),
        ("account_id", created.account_id.clone().into()),
    ];
    list(format, "service_requests", "request", &[item])
}

/// The answer to `POST servicerequestupdates`: the comment's id, as FixMyStreet reads it
/// (`<service_request_updates><request_update><update_id>…`; the first `request_update`'s
/// `update_id`, which must not be empty).
pub fn posted_update(format: Format, posted: &PostedUpdate) -> String {
    let item = vec![("update_id", posted.update_id.as_str().into())];
    list(format, "service_request_updates", "request_update", &[item])
}

/// Requests, with date-times in the council's offset and `status` in FixMyStreet's extended
/// statuses where `extended` (see [`ServiceRequest::listed_status`]).
pub fn requests(format: Format, requests: &[ServiceRequest], tz: Tz, extended: bool) -> String {
    let items: Vec<Item> = requests
        .iter()
        .map(|r| request_item(r, tz, extended))
        .collect();
    list(format, "service_requests", "request", &items)
}

fn request_item(request: &ServiceRequest, tz: Tz, extended: bool) -> Item {
    let service = Service::for_subject(request.subject);
    let number = |value: Option<f64>| value.map_or(Value::Absent, Value::Number);
    let status_notes = Some(request.status_notes.clone()).filter(|notes| !notes.is_empty());
    vec![
        ("service_request_id", request.id.as_str().into()),
        ("status", request.listed_status(extended).into()),
        ("status_notes", status_notes.into()),
        ("service_name", service.name.into()),
        ("service_code", service.code().into()),
        ("description", request.description.clone().into()),
        (
            "agency_responsible",
            request.agency_responsible.clone().into(),
        ),
        ("service_notice", request.service_notice.clone().into()),
        (
            "requested_datetime",
            format_w3c(request.requested, tz).as_str().into(),
        ),
        (
            "updated_datetime",
            format_w3c(request.updated, tz).as_str().into(),
        ),
        (
            "expected_datetime",
            request.expected.map(|at| format_w3c(at, tz)).into(),
        ),
        ("address", request.address.clone().into()),
        // A UPRN is an identifier, not a quantity: text, like the other ids.
        (
            "address_id",
            request.address_id.map(|uprn| uprn.to_string()).into(),
        ),
        ("zipcode", request.zipcode.clone().into()),
        ("lat", number(request.lat)),
        ("long", number(request.long)),
        ("media_url", request.media_url.clone().into()),
    ]
}

/// Updates, FixMyStreet's `servicerequestupdates`: `<service_requests_updates><request_update>…`
/// in XML (the root FixMyStreet's documentation and tests use), with date-times in the council's
/// offset.
pub fn updates(format: Format, updates: &[RequestUpdate], tz: Tz) -> String {
    let items: Vec<Item> = updates.iter().map(|u| update_item(u, tz)).collect();
    list(format, "service_requests_updates", "request_update", &items)
}

fn update_item(update: &RequestUpdate, tz: Tz) -> Item {
    vec![
        ("update_id", update.update_id.as_str().into()),
        ("service_request_id", update.request_id.as_str().into()),
        ("status", update.status.as_str().into()),
        (
            "updated_datetime",
            format_w3c(update.updated, tz).as_str().into(),
        ),
        ("description", update.description.as_str().into()),
        ("media_url", update.media_url.clone().into()),
        (
            "external_status_code",
            update.external_status_code.clone().into(),
        ),
    ]
}

/// An error answer: `[{code, description}]` or `<errors><error>…`.
pub fn error(format: Format, error: &Open311Error) -> Response {
    let items: Vec<Item> = error
        .errors
        .iter()
        .map(|entry| {
            vec![
                ("code", Value::Integer(u64::from(entry.code))),
                ("description", entry.description.as_str().into()),
            ]
        })
        .collect();
    respond(
        format,
        error.status,
        list(format, "errors", "error", &items),
    )
}

fn json_object(item: &Item) -> serde_json::Value {
    let map = item
        .iter()
        .map(|(name, value)| {
            let json = match value {
                Value::Text(text) => serde_json::Value::from(text.as_str()),
                Value::Number(n) => serde_json::Number::from_f64(*n)
                    .map_or(serde_json::Value::Null, serde_json::Value::Number),
                Value::Integer(n) => serde_json::Value::from(*n),
                Value::Bool(b) => serde_json::Value::Bool(*b),
                Value::Absent => serde_json::Value::Null,
            };
            ((*name).to_owned(), json)
        })
        .collect();
    serde_json::Value::Object(map)
}

/// A tiny XML writer for flat documents; element names are our own constants, only text is
/// escaped.
struct Xml {
    out: String,
}

impl Xml {
    fn new(root: &str) -> Self {
        let mut xml = Self {
            out: String::with_capacity(1024),
        };
        xml.out
            .push_str("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n");
        xml.open(root);
        xml
    }

    fn open(&mut self, name: &str) {
        self.out.push('<');
        self.out.push_str(name);
        self.out.push('>');
    }

    fn close(&mut self, name: &str) {
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push('>');
    }

    fn fields(&mut self, item: &[(&'static str, Value)]) {
        for (name, value) in item {
            let text = match value {
                Value::Text(text) => text.clone(),
                Value::Number(n) if n.is_finite() => n.to_string(),
                Value::Integer(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                Value::Number(_) | Value::Absent => continue,
            };
            self.open(name);
            escape_into(&text, &mut self.out);
            self.close(name);
        }
    }

    fn finish(mut self, root: &str) -> String {
        self.close(root);
        self.out.push('\n');
        self.out
    }
}

/// Appends `text` to `out` as XML character data: the five markup characters become entities,
/// and characters XML 1.0 forbids even as references (most C0 controls, U+FFFE, U+FFFF) become
/// U+FFFD, so that a stray control character in a note cannot make the whole document
/// unparseable.
pub fn escape_into(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if c < ' ' || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_replaces_forbidden_characters() {
        let mut out = String::new();
        escape_into("<a href=\"x\">Tom & Jerry's</a>\u{1}\u{FFFF}\n", &mut out);
        assert_eq!(
            out,
            "&lt;a href=&quot;x&quot;&gt;Tom &amp; Jerry&apos;s&lt;/a&gt;\u{FFFD}\u{FFFD}\n"
        );
    }

    #[test]
    fn absent_fields_are_null_in_json_and_left_out_of_xml() {
        let items = vec![vec![
            ("a", Value::Text("x".into())),
            ("b", Value::Absent),
            ("c", Value::Number(f64::NAN)),
            ("d", Value::Number(51.5)),
        ]];
        assert_eq!(
            list(Format::Json, "r", "i", &items),
            r#"[{"a":"x","b":null,"c":null,"d":51.5}]"#
        );
        assert_eq!(
            list(Format::Xml, "r", "i", &items),
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<r><i><a>x</a><d>51.5</d></i></r>\n"
        );
    }

    #[test]
    fn splits_extensions() {
        assert_eq!(Format::split("refuse.json"), Some(("refuse", Format::Json)));
        assert_eq!(Format::split("a.b.xml"), Some(("a.b", Format::Xml)));
        assert_eq!(Format::split("refuse.html"), None);
        assert_eq!(Format::split("refuse"), None);
    }
}
