//! The UI language: Chinese by default, English by a switch kept in a cookie.

use axum::http::HeaderMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    Zh,
    En,
}

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::Zh => "zh",
            Lang::En => "en",
        }
    }

    /// From the `lang` cookie; Chinese when absent.
    pub fn from_headers(headers: &HeaderMap) -> Lang {
        match crate::auth::cookie(headers, "lang").as_deref() {
            Some("en") => Lang::En,
            _ => Lang::Zh,
        }
    }

    pub fn pick<'a>(self, zh: &'a str, en: &'a str) -> &'a str {
        match self {
            Lang::Zh => zh,
            Lang::En => en,
        }
    }

    pub fn msg(self, m: &lector_domain::Msg) -> String {
        m.in_lang(self.code()).to_string()
    }
}
