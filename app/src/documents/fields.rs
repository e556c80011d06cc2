//! Key fields found in a document's text, as typed JSON: dates, amounts with currency, IBANs
//! (checksum-valid only), labelled document numbers and names. The rules (server side) read
//! English, Russian and a little German.

use serde::{Deserialize, Serialize};

use super::classify::DocType;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DateField {
    /// ISO 8601, `YYYY-MM-DD`.
    pub value: String,
    /// `issued`, `due`, `birth`, `expiry`, … when the line says.
    pub label: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Amount {
    /// A decimal with `.`, e.g. `1234.50`.
    pub value: String,
    /// ISO 4217.
    pub currency: String,
    /// `total`, `tax`, `balance`, … when the line says.
    pub label: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocNumber {
    /// `invoice number`, `passport number`, …
    pub label: String,
    pub value: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fields {
    #[serde(default)]
    pub dates: Vec<DateField>,
    #[serde(default)]
    pub amounts: Vec<Amount>,
    #[serde(default)]
    pub ibans: Vec<String>,
    #[serde(default)]
    pub numbers: Vec<DocNumber>,
    #[serde(default)]
    pub names: Vec<String>,
}

/// `1234.5` → `1,234.50`
fn grouped(value: &str) -> String {
    let (whole, fraction) = value.split_once('.').unwrap_or((value, ""));
    let digits: Vec<char> = whole.chars().collect();
    let mut out = String::new();
    for (i, c) in digits.iter().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(*c);
    }
    if !fraction.is_empty() {
        out.push('.');
        out.push_str(fraction);
    }
    out
}

impl Fields {
    pub fn is_empty(&self) -> bool {
        self.dates.is_empty()
            && self.amounts.is_empty()
            && self.ibans.is_empty()
            && self.numbers.is_empty()
            && self.names.is_empty()
    }

    fn amount(&self, label: &str) -> Option<String> {
        self.amounts
            .iter()
            .find(|a| a.label.as_deref() == Some(label))
            .map(|a| format!("{label} {} {}", grouped(&a.value), a.currency))
    }

    fn date(&self, label: &str) -> Option<String> {
        self.dates
            .iter()
            .find(|d| d.label.as_deref() == Some(label))
            .map(|d| format!("{label} {}", d.value))
    }

    fn number(&self, label: &str) -> Option<String> {
        self.numbers
            .iter()
            .find(|n| n.label == label)
            .map(|n| format!("{} {}", n.label, n.value))
    }

    /// A few short summaries of the most telling fields for a type, e.g. `total 1,190.00 EUR`.
    pub fn key_fields(&self, doc_type: DocType, max: usize) -> Vec<String> {
        let first_number = self
            .numbers
            .first()
            .map(|n| format!("{} {}", n.label, n.value));
        let first_amount = self
            .amounts
            .first()
            .map(|a| format!("{} {}", grouped(&a.value), a.currency));
        let candidates: Vec<Option<String>> = match doc_type {
            DocType::Invoice => vec![
                self.amount("total").or(first_amount),
                self.date("due"),
                self.number("invoice number").or(first_number),
            ],
            DocType::Receipt => vec![
                self.amount("total").or(first_amount),
                self.dates.first().map(|d| d.value.clone()),
            ],
            DocType::IdDocument => vec![
                self.number("passport number").or(first_number),
                self.names.first().cloned(),
                self.date("expiry"),
            ],
            DocType::BankStatement => vec![
                self.amount("balance").or(first_amount),
                self.ibans.first().map(|i| format!("IBAN {i}")),
            ],
            _ => vec![
                first_number,
                self.amount("total").or(first_amount),
                self.dates.first().map(|d| d.value.clone()),
            ],
        };
        candidates.into_iter().flatten().take(max).collect()
    }
}

#[cfg(feature = "ssr")]
pub use rules::{decimal, extract, mod97 as valid_iban};

#[cfg(feature = "ssr")]
mod rules {
    use std::sync::LazyLock;

    use regex::Regex;

    use super::{Amount, DateField, DocNumber, Fields};

    const MAX_PER_LIST: usize = 20;

    #[allow(clippy::expect_used)]
    fn re(pattern: &str) -> Regex {
        Regex::new(pattern).expect("a valid built-in pattern")
    }

    static IBAN: LazyLock<Regex> =
        LazyLock::new(|| re(r"\b([A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?)\b"));
    const NUM: &str = r"\d{1,3}(?:[ \u{a0},.]\d{3})+(?:[.,]\d{1,2})?|\d+(?:[.,]\d{1,2})?";
    static AMOUNT_AFTER: LazyLock<Regex> = LazyLock::new(|| {
        re(&format!(
            r"(?i)(?:^|[^\d.,])({NUM})\s?(eur\b|usd\b|gbp\b|rub\b|chf\b|руб\.?|р\.|₽|€|\$|£)"
        ))
    });
    static AMOUNT_BEFORE: LazyLock<Regex> = LazyLock::new(|| {
        re(&format!(
            r"(?i)(€|\$|£|₽|\beur\b|\busd\b|\bgbp\b|\bchf\b|\brub\b)\s?({NUM})"
        ))
    });
    static ISO_DATE: LazyLock<Regex> = LazyLock::new(|| re(r"\b(\d{4})-(\d{2})-(\d{2})\b"));
    static NUMERIC_DATE: LazyLock<Regex> =
        LazyLock::new(|| re(r"\b(\d{1,2})[./](\d{1,2})[./](\d{4})\b"));
    static WORD_DATE: LazyLock<Regex> =
        LazyLock::new(|| re(r"(?i)\b(\d{1,2})\.?\s+([a-zа-яёä]+)\.?\s+(\d{4})\b"));
    static MONTH_FIRST_DATE: LazyLock<Regex> =
        LazyLock::new(|| re(r"(?i)\b([a-z]+)\s+(\d{1,2}),\s+(\d{4})\b"));
    static NUMBER: LazyLock<Regex> = LazyLock::new(|| {
        re(
            r"(?i)(invoice\s*(?:no\.?|number|#)|rechnung\s*(?:nr\.?|nummer)|сч[её]т\s*(?:на оплату\s*)?№|passport\s*(?:no\.?|number)|номер паспорта|серия и номер|contract\s*(?:no\.?|number)|договор\s*№|policy\s*(?:no\.?|number)|account\s*(?:no\.?|number)|номер сч[её]та|document\s*(?:no\.?|number)|receipt\s*(?:no\.?|number))\s*[:#№]?\s*([A-Z0-9А-Я][A-Z0-9А-Я\-/]*(?: \d+)*)",
        )
    });
    static NAME: LazyLock<Regex> = LazyLock::new(|| {
        re(
            r"(?i)\b(name|surname|given names|patient|customer|bill to|фио|фамилия|имя|пациент)\s*:\s*((?-i:[A-ZА-ЯЁ][A-Za-zА-Яа-яЁё'\-]+(?: [A-ZА-ЯЁ][A-Za-zА-Яа-яЁё'\-]+){0,3}))",
        )
    });

    fn month(word: &str) -> Option<u8> {
        let w = word.to_lowercase();
        let table: [(&[&str], u8); 12] = [
            (&["jan", "январ", "янв", "januar"], 1),
            (&["feb", "феврал", "фев", "februar"], 2),
            (&["mar", "март", "мар", "märz", "maerz"], 3),
            (&["apr", "апрел", "апр"], 4),
            (&["may", "ма", "mai"], 5),
            (&["jun", "июн"], 6),
            (&["jul", "июл"], 7),
            (&["aug", "август", "авг"], 8),
            (&["sep", "сентябр", "сен"], 9),
            (&["oct", "октябр", "окт", "okt"], 10),
            (&["nov", "ноябр", "ноя"], 11),
            (&["dec", "декабр", "дек", "dez"], 12),
        ];
        // Longest prefixes first would be more exact; these never collide in practice except
        // "ма" (май/мая), which only matches when nothing longer did.
        table
            .iter()
            .filter(|(_, n)| *n != 5)
            .chain(table.iter().filter(|(_, n)| *n == 5))
            .find(|(prefixes, _)| prefixes.iter().any(|p| w.starts_with(p)))
            .map(|(_, n)| *n)
    }

    fn date(year: i32, month: u8, day: u8) -> Option<String> {
        let month = time::Month::try_from(month).ok()?;
        let date = time::Date::from_calendar_date(year, month, day).ok()?;
        Some(format!(
            "{:04}-{:02}-{:02}",
            date.year(),
            u8::from(date.month()),
            date.day()
        ))
    }

    fn label_of(prefix: &str, table: &[(&[&str], &str)]) -> Option<String> {
        let lower = prefix.to_lowercase();
        table
            .iter()
            .filter_map(|(words, label)| {
                words
                    .iter()
                    .filter_map(|w| lower.rfind(w))
                    .max()
                    .map(|at| (at, *label))
            })
            .max_by_key(|(at, _)| *at)
            .map(|(_, label)| label.to_owned())
    }

    const DATE_LABELS: &[(&[&str], &str)] = &[
        (&["due", "срок оплаты", "оплатить до", "fällig"], "due"),
        (&["birth", "рождения", "geburt"], "birth"),
        (
            &[
                "expiry",
                "valid until",
                "expires",
                "действителен до",
                "gültig bis",
            ],
            "expiry",
        ),
        (
            &[
                "issue",
                "issued",
                "выдачи",
                "invoice date",
                "date:",
                "дата:",
                "datum",
            ],
            "issued",
        ),
        (&["period", "период"], "period"),
    ];

    const AMOUNT_LABELS: &[(&[&str], &str)] = &[
        (
            &[
                "total",
                "итого",
                "к оплате",
                "amount due",
                "gesamt",
                "всего",
            ],
            "total",
        ),
        (&["vat", "ндс", "mwst", "tax"], "tax"),
        (&["balance", "остаток", "saldo"], "balance"),
    ];

    fn currency(token: &str) -> &'static str {
        match token.to_lowercase().trim_end_matches('.') {
            "€" | "eur" => "EUR",
            "$" | "usd" => "USD",
            "£" | "gbp" => "GBP",
            "chf" => "CHF",
            _ => "RUB",
        }
    }

    /// `1.234,56` / `1,234.56` / `1 234,56` / `12,5` → `1234.56` / `12.50`.
    pub fn decimal(number: &str) -> Option<String> {
        let cleaned: String = number
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '\u{a0}')
            .collect();
        let last_sep = cleaned.rfind([',', '.']);
        let (whole, fraction) = match last_sep {
            Some(at) if cleaned.len() - at - 1 <= 2 => (&cleaned[..at], &cleaned[at + 1..]),
            _ => (cleaned.as_str(), ""),
        };
        let whole: String = whole.chars().filter(char::is_ascii_digit).collect();
        if whole.is_empty() {
            return None;
        }
        let whole = whole.trim_start_matches('0');
        let whole = if whole.is_empty() { "0" } else { whole };
        Some(format!("{whole}.{:0<2}", fraction))
    }

    pub fn mod97(iban: &str) -> bool {
        if !(15..=34).contains(&iban.len()) {
            return false;
        }
        let rearranged = format!("{}{}", &iban[4..], &iban[..4]);
        let mut remainder: u32 = 0;
        for c in rearranged.chars() {
            let value = match c.to_digit(36) {
                Some(v) => v,
                None => return false,
            };
            for digit in value.to_string().chars() {
                remainder = (remainder * 10 + digit.to_digit(10).unwrap_or(0)) % 97;
            }
        }
        remainder == 1
    }

    fn push<T: PartialEq>(list: &mut Vec<T>, item: T) {
        if list.len() < MAX_PER_LIST && !list.contains(&item) {
            list.push(item);
        }
    }

    pub fn extract(text: &str) -> Fields {
        let mut fields = Fields::default();
        for line in text.lines() {
            for found in IBAN.captures_iter(line) {
                let iban: String = found[1].chars().filter(|c| !c.is_whitespace()).collect();
                if mod97(&iban) {
                    push(&mut fields.ibans, iban);
                }
            }
            // Amounts: an IBAN's digits are not money.
            let scrubbed = IBAN.replace_all(line, " ");
            let mut amounts: Vec<(usize, String, String)> = Vec::new();
            for found in AMOUNT_AFTER.captures_iter(&scrubbed) {
                if let (Some(number), Some(code)) = (found.get(1), found.get(2)) {
                    amounts.push((
                        number.start(),
                        number.as_str().to_owned(),
                        currency(code.as_str()).to_owned(),
                    ));
                }
            }
            for found in AMOUNT_BEFORE.captures_iter(&scrubbed) {
                if let (Some(code), Some(number)) = (found.get(1), found.get(2))
                    && !amounts.iter().any(|(at, _, _)| *at == number.start())
                {
                    {
                        amounts.push((
                            code.start(),
                            number.as_str().to_owned(),
                            currency(code.as_str()).to_owned(),
                        ));
                    }
                }
            }
            amounts.sort_by_key(|(at, _, _)| *at);
            for (at, number, code) in amounts {
                if let Some(value) = decimal(&number) {
                    let label = label_of(&scrubbed[..at.min(scrubbed.len())], AMOUNT_LABELS);
                    push(
                        &mut fields.amounts,
                        Amount {
                            value,
                            currency: code,
                            label,
                        },
                    );
                }
            }
            let mut dates: Vec<(usize, String)> = Vec::new();
            for found in ISO_DATE.captures_iter(line) {
                let (Ok(y), Ok(m), Ok(d)) = (found[1].parse(), found[2].parse(), found[3].parse())
                else {
                    continue;
                };
                if let (Some(value), Some(at)) = (date(y, m, d), found.get(0)) {
                    dates.push((at.start(), value));
                }
            }
            for found in NUMERIC_DATE.captures_iter(line) {
                let (Ok(d), Ok(m), Ok(y)) = (found[1].parse(), found[2].parse(), found[3].parse())
                else {
                    continue;
                };
                if let (Some(value), Some(at)) = (date(y, m, d), found.get(0)) {
                    dates.push((at.start(), value));
                }
            }
            for found in WORD_DATE.captures_iter(line) {
                let (Ok(d), Some(m), Ok(y)) =
                    (found[1].parse(), month(&found[2]), found[3].parse())
                else {
                    continue;
                };
                if let (Some(value), Some(at)) = (date(y, m, d), found.get(0)) {
                    dates.push((at.start(), value));
                }
            }
            for found in MONTH_FIRST_DATE.captures_iter(line) {
                let (Some(m), Ok(d), Ok(y)) =
                    (month(&found[1]), found[2].parse(), found[3].parse())
                else {
                    continue;
                };
                if let (Some(value), Some(at)) = (date(y, m, d), found.get(0)) {
                    dates.push((at.start(), value));
                }
            }
            dates.sort_by_key(|(at, _)| *at);
            for (at, value) in dates {
                let label = label_of(&line[..at], DATE_LABELS);
                push(&mut fields.dates, DateField { value, label });
            }
            for found in NUMBER.captures_iter(line) {
                let label = found[1].to_lowercase();
                let label = if label.contains("invoice")
                    || label.contains("сч") && !label.contains("номер")
                    || label.contains("rechnung")
                {
                    "invoice number"
                } else if label.contains("passport")
                    || label.contains("паспорт")
                    || label.contains("серия")
                {
                    "passport number"
                } else if label.contains("contract") || label.contains("договор") {
                    "contract number"
                } else if label.contains("policy") {
                    "policy number"
                } else if label.contains("account") || label.contains("номер сч") {
                    "account number"
                } else if label.contains("receipt") {
                    "receipt number"
                } else {
                    "document number"
                };
                let value = found[2].trim().to_owned();
                if value.chars().any(|c| c.is_ascii_digit()) {
                    push(
                        &mut fields.numbers,
                        DocNumber {
                            label: label.to_owned(),
                            value,
                        },
                    );
                }
            }
            for found in NAME.captures_iter(line) {
                push(&mut fields.names, found[2].trim().to_owned());
            }
        }
        fields
    }
}

#[cfg(all(test, feature = "ssr"))]
mod tests {
    use super::*;

    const INVOICE: &str = "INVOICE\nInvoice No. INV-2026-0042\nDate: 12.03.2026\nBill to: Anna Petrova\nConsulting services  1,000.00 EUR\nVAT 19%  190.00 EUR\nTotal  1,190.00 EUR\nPayment due: 2026-04-12\nIBAN: DE89 3704 0044 0532 0130 00\nPhone +49 30 1234567";

    #[test]
    fn an_invoice_yields_total_due_date_number_and_iban() {
        let fields = extract(INVOICE);
        assert_eq!(fields.ibans, vec!["DE89370400440532013000"]);
        assert!(
            fields.amounts.contains(&Amount {
                value: "1190.00".into(),
                currency: "EUR".into(),
                label: Some("total".into())
            }),
            "{fields:#?}"
        );
        assert!(
            fields.amounts.contains(&Amount {
                value: "190.00".into(),
                currency: "EUR".into(),
                label: Some("tax".into())
            }),
            "{fields:#?}"
        );
        assert!(
            fields.dates.contains(&DateField {
                value: "2026-04-12".into(),
                label: Some("due".into())
            }),
            "{fields:#?}"
        );
        assert!(
            fields.dates.contains(&DateField {
                value: "2026-03-12".into(),
                label: Some("issued".into())
            }),
            "{fields:#?}"
        );
        assert_eq!(
            fields.numbers[0],
            DocNumber {
                label: "invoice number".into(),
                value: "INV-2026-0042".into()
            }
        );
        assert_eq!(fields.names, vec!["Anna Petrova"]);
        assert!(
            !fields
                .amounts
                .iter()
                .any(|a| a.value.starts_with("1234567")),
            "a phone is no amount"
        );
        assert_eq!(
            fields.key_fields(DocType::Invoice, 3),
            vec![
                "total 1,190.00 EUR",
                "due 2026-04-12",
                "invoice number INV-2026-0042"
            ]
        );
    }

    #[test]
    fn passports_and_russian_documents() {
        let fields = extract(
            "PASSPORT\nSurname: SMITH\nPassport No. 72 1234567\nDate of birth: 14.07.1985\nDate of expiry: 01.02.2031",
        );
        assert_eq!(fields.numbers[0].value, "72 1234567");
        assert_eq!(fields.numbers[0].label, "passport number");
        assert!(fields.dates.contains(&DateField {
            value: "1985-07-14".into(),
            label: Some("birth".into())
        }));
        assert!(fields.dates.contains(&DateField {
            value: "2031-02-01".into(),
            label: Some("expiry".into())
        }));
        let fields = extract(
            "Номер паспорта: 45 12 345678\nДата рождения: 3 мая 1990 г.\nСчёт № 17 от 12 марта 2024 г.\nИтого к оплате: 1 234,56 руб.",
        );
        assert_eq!(
            fields.numbers[0],
            DocNumber {
                label: "passport number".into(),
                value: "45 12 345678".into()
            }
        );
        assert!(
            fields
                .dates
                .iter()
                .any(|d| d.value == "1990-05-03" && d.label.as_deref() == Some("birth")),
            "{fields:#?}"
        );
        assert!(
            fields.dates.iter().any(|d| d.value == "2024-03-12"),
            "{fields:#?}"
        );
        assert!(
            fields.amounts.contains(&Amount {
                value: "1234.56".into(),
                currency: "RUB".into(),
                label: Some("total".into())
            }),
            "{fields:#?}"
        );
    }

    #[test]
    fn invalid_values_are_dropped() {
        let fields = extract(
            "IBAN DE89 3704 0044 0532 0130 01\nDate 31.02.2024\nPrice € 12,50 and $3.00 and 12. März 2024",
        );
        assert!(fields.ibans.is_empty());
        assert_eq!(
            fields.dates,
            vec![DateField {
                value: "2024-03-12".into(),
                label: None
            }]
        );
        assert_eq!(
            fields
                .amounts
                .iter()
                .map(|a| (a.value.as_str(), a.currency.as_str()))
                .collect::<Vec<_>>(),
            vec![("12.50", "EUR"), ("3.00", "USD")]
        );
    }
}
