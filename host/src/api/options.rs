//! The thumbnail options as HTTP takes them: the query-string extractor, and the OpenAPI
//! parameters and body properties, all made from [`resizer_core::request::OPTIONS`], so the
//! document, the parsers and every other front end share one definition.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use resizer_core::request::{Kind, OPTIONS, OptionDef, OptionError, Raw};
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type};
use utoipa::openapi::{RefOr, Required};

use super::error::ApiError;

/// The options of a request's query string, as text; unknown names never get this far (the
/// `params` middleware refuses them, naming those the route allows).
#[derive(Debug, Default, Clone)]
pub struct OptionParams(pub Raw);

impl<S: Send + Sync> FromRequestParts<S> for OptionParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or("");
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
            .map(|(n, v)| (n.into_owned(), v.into_owned()))
            .collect();
        Ok(OptionParams(Raw::from_pairs(
            pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())),
        )))
    }
}

impl utoipa::IntoParams for OptionParams {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        OPTIONS
            .iter()
            .map(|def| {
                ParameterBuilder::new()
                    .name(def.name)
                    .parameter_in(ParameterIn::Query)
                    .required(Required::False)
                    .description(Some(def.help))
                    .schema(Some(schema(def, false)))
                    .build()
            })
            .collect()
    }
}

impl From<OptionError> for ApiError {
    fn from(e: OptionError) -> Self {
        ApiError::InvalidOptions(e.to_string())
    }
}

/// The schema of one option's value. Form fields carry text, JSON bodies typed values; both
/// take the same range.
pub fn schema(def: &OptionDef, with_default: bool) -> RefOr<Schema> {
    let b = ObjectBuilder::new().description(Some(def.help));
    let b = match def.kind {
        Kind::Integer { min, max } => b.schema_type(Type::Integer).minimum(Some(min)).maximum(Some(max)),
        Kind::Number { min, max } => b
            .schema_type(Type::Number)
            .minimum(Some(min as f64))
            .maximum(Some(max as f64)),
        Kind::Bool => b.schema_type(Type::Boolean),
        Kind::Choice(words) => b
            .schema_type(Type::String)
            .enum_values(Some(words.iter().copied())),
        Kind::Text { pattern } => b.schema_type(Type::String).pattern(Some(pattern)),
    };
    // Forms (Swagger's among them) start from the example: the default where there is one.
    let example = match (with_default, def.default) {
        (true, Some(default)) => default,
        _ => def.example,
    };
    let b = b.examples([crate::jobs::view::option_json(def, example)]);
    let b = match (with_default, def.default) {
        (true, Some(d)) => b.default(Some(crate::jobs::view::option_json(def, d))),
        _ => b,
    };
    b.build().into()
}

/// The shape of an http(s) URL field, so generated requests are URLs the parser takes (what
/// the SSRF guard refuses is still only known when the URL is used).
pub const URL_PATTERN: &str = r"^https?://[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*(:[1-9][0-9]{0,3})?(/[^\s]*)?$";

/// An http(s) URL property; in a form, empty too (a field not filled in).
pub fn url_property(description: &str, form: bool) -> ObjectBuilder {
    let pattern = if form {
        format!("^$|{URL_PATTERN}")
    } else {
        URL_PATTERN.to_string()
    };
    let b = ObjectBuilder::new()
        .schema_type(Type::String)
        .max_length(Some(4096))
        .pattern(Some(pattern))
        .description(Some(description));
    if form { b.examples([""]) } else { b }
}

/// An object schema with the options as optional properties, after `fields`.
pub fn body_schema(description: &str, fields: ObjectBuilder) -> RefOr<Schema> {
    OPTIONS
        .iter()
        .fold(fields.description(Some(description)), |b, def| {
            b.property(def.name, schema(def, true))
        })
        .build()
        .into()
}

/// A binary property (a file part).
pub fn binary(description: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
        .description(Some(description))
}

#[cfg(test)]
mod tests {
    use super::*;
    use utoipa::IntoParams;

    /// The query's URL parameters are derived (their pattern is a literal there): they must
    /// carry the one pattern.
    #[test]
    fn url_parameters_have_the_one_pattern() {
        let params = super::super::input::CallbackParams::into_params(|| None)
            .into_iter()
            .chain(super::super::input::UrlSource::into_params(|| None));
        let mut seen = 0;
        for p in params.filter(|p| p.name == "url" || p.name == "callback_url") {
            let json = serde_json::to_value(&p).unwrap();
            assert_eq!(json["schema"]["pattern"], URL_PATTERN, "{}", p.name);
            seen += 1;
        }
        assert_eq!(seen, 2);
    }
}
