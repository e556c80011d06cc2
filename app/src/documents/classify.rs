//! Document types, and (server side) how a document's text is classified: keyword rules in
//! English, Russian and a little German, combined with the embedding model's similarity to a
//! one-sentence description of each type.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocType {
    Invoice,
    Receipt,
    IdDocument,
    Contract,
    BankStatement,
    Letter,
    Medical,
    Other,
}

impl DocType {
    pub const ALL: [DocType; 8] = [
        DocType::Invoice,
        DocType::Receipt,
        DocType::IdDocument,
        DocType::Contract,
        DocType::BankStatement,
        DocType::Letter,
        DocType::Medical,
        DocType::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Invoice => "invoice",
            Self::Receipt => "receipt",
            Self::IdDocument => "id_document",
            Self::Contract => "contract",
            Self::BankStatement => "bank_statement",
            Self::Letter => "letter",
            Self::Medical => "medical",
            Self::Other => "other",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == value)
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Invoice => "Invoice",
            Self::Receipt => "Receipt",
            Self::IdDocument => "ID document",
            Self::Contract => "Contract",
            Self::BankStatement => "Bank statement",
            Self::Letter => "Letter",
            Self::Medical => "Medical",
            Self::Other => "Other",
        }
    }

    pub fn label_ru(self) -> &'static str {
        match self {
            Self::Invoice => "Счёт",
            Self::Receipt => "Чек",
            Self::IdDocument => "Удостоверение личности",
            Self::Contract => "Договор",
            Self::BankStatement => "Банковская выписка",
            Self::Letter => "Письмо",
            Self::Medical => "Медицинский документ",
            Self::Other => "Другое",
        }
    }
}

/// One English sentence per type, embedded and compared with a document's embedding.
pub const PROTOTYPES: [(DocType, &str); 8] = [
    (
        DocType::Invoice,
        "An invoice: a bill from a seller asking for payment, with an invoice number, items, VAT, a total amount due and a payment due date.",
    ),
    (
        DocType::Receipt,
        "A shop receipt: proof of a purchase at a store or cafe, with items, prices, the total paid, the cashier and change.",
    ),
    (
        DocType::IdDocument,
        "An identity document such as a passport, ID card or driving licence, with surname, given names, date of birth, nationality and document number.",
    ),
    (
        DocType::Contract,
        "A contract or agreement between parties, with terms and conditions, obligations, the term of the agreement and signatures.",
    ),
    (
        DocType::BankStatement,
        "A bank account statement listing transactions, with opening balance, closing balance, account number and IBAN.",
    ),
    (
        DocType::Letter,
        "A personal or business letter addressed to someone, beginning with Dear and ending with regards and a signature.",
    ),
    (
        DocType::Medical,
        "A medical document from a doctor or clinic about a patient: diagnosis, prescription, test results and treatment.",
    ),
    (
        DocType::Other,
        "A general document, notes or text that is not an invoice, receipt, identity document, contract, statement, letter or medical record.",
    ),
];

/// Keywords per type (lower case); each hit adds its weight.
#[cfg(feature = "ssr")]
const KEYWORDS: [(DocType, &[(&str, f32)]); 7] = [
    (
        DocType::Invoice,
        &[
            ("invoice", 3.0),
            ("bill to", 2.0),
            ("amount due", 2.0),
            ("payment due", 2.0),
            ("due date", 1.5),
            ("vat", 1.0),
            ("subtotal", 1.0),
            ("счёт на оплату", 3.0),
            ("счет на оплату", 3.0),
            ("счёт №", 2.5),
            ("счет №", 2.5),
            ("инн", 1.0),
            ("кпп", 1.0),
            ("ндс", 1.0),
            ("к оплате", 1.5),
            ("rechnung", 3.0),
        ],
    ),
    (
        DocType::Receipt,
        &[
            ("receipt", 3.0),
            ("cashier", 2.0),
            ("change", 1.0),
            ("thank you for shopping", 2.0),
            ("thank you for your visit", 2.0),
            ("paid by card", 1.5),
            ("кассовый чек", 3.0),
            ("кассир", 2.0),
            ("чек", 1.5),
            ("сдача", 1.5),
            ("итог", 1.0),
            ("quittung", 3.0),
            ("kassenbon", 3.0),
        ],
    ),
    (
        DocType::IdDocument,
        &[
            ("passport", 3.0),
            ("date of birth", 2.0),
            ("nationality", 2.0),
            ("place of birth", 1.5),
            ("given names", 2.0),
            ("surname", 1.0),
            ("date of expiry", 1.5),
            ("identity card", 3.0),
            ("driving licence", 3.0),
            ("паспорт", 3.0),
            ("дата рождения", 2.0),
            ("место рождения", 1.5),
            ("гражданин", 1.0),
            ("фамилия", 1.0),
            ("reisepass", 3.0),
            ("personalausweis", 3.0),
            ("p<", 2.0),
        ],
    ),
    (
        DocType::Contract,
        &[
            ("agreement", 2.5),
            ("contract", 2.5),
            ("hereinafter", 2.5),
            ("the parties", 2.0),
            ("terms and conditions", 1.5),
            ("tenant", 1.5),
            ("landlord", 1.5),
            ("договор", 3.0),
            ("стороны", 2.0),
            ("именуемый", 2.5),
            ("арендатор", 1.5),
            ("vertrag", 3.0),
        ],
    ),
    (
        DocType::BankStatement,
        &[
            ("statement", 2.0),
            ("opening balance", 3.0),
            ("closing balance", 3.0),
            ("account statement", 3.0),
            ("transactions", 1.5),
            ("выписка", 3.0),
            ("остаток", 2.0),
            ("kontoauszug", 3.0),
        ],
    ),
    (
        DocType::Letter,
        &[
            ("dear ", 2.5),
            ("sincerely", 2.5),
            ("kind regards", 2.0),
            ("best regards", 2.0),
            ("yours faithfully", 2.5),
            ("уважаем", 2.5),
            ("с уважением", 2.5),
            ("sehr geehrte", 2.5),
            ("mit freundlichen", 2.5),
        ],
    ),
    (
        DocType::Medical,
        &[
            ("patient", 2.5),
            ("diagnosis", 3.0),
            ("prescription", 2.5),
            ("clinic", 1.5),
            ("blood", 1.0),
            ("treatment", 1.5),
            ("пациент", 2.5),
            ("диагноз", 3.0),
            ("рецепт", 2.0),
            ("поликлиника", 2.0),
            ("befund", 2.5),
        ],
    ),
];

/// Keyword evidence per type (index = position in `DocType::ALL`), squashed into 0..1 so
/// short and long documents are comparable.
#[cfg(feature = "ssr")]
pub fn rule_scores(text: &str) -> [f32; 8] {
    let lower = text.to_lowercase();
    let mut scores = [0.0f32; 8];
    for (doc_type, keywords) in KEYWORDS {
        let raw: f32 = keywords
            .iter()
            .map(|(word, weight)| {
                // Repeats count, but with diminishing returns.
                let hits = lower.matches(word).take(3).count() as f32;
                weight * hits.sqrt()
            })
            .sum();
        let index = DocType::ALL
            .iter()
            .position(|t| *t == doc_type)
            .unwrap_or(7);
        scores[index] = 1.0 - (-raw / 4.0).exp();
    }
    scores
}

/// Combines rule evidence with the optional embedding similarities: the rules weigh more
/// (they are precise when they fire); the model breaks ties and speaks when no rule fired.
/// `score = 0.7 * rules + 0.3 * max(0, (similarity - 0.1) / 0.5)`; below 0.2 the type is Other.
pub fn decide(rule_scores: &[f32; 8], similarity: Option<&[f32; 8]>) -> (DocType, f32) {
    let mut best = (DocType::Other, 0.0f32);
    for (index, doc_type) in DocType::ALL.iter().enumerate() {
        if *doc_type == DocType::Other {
            continue;
        }
        let model = similarity.map_or(0.0, |s| ((s[index] - 0.1) / 0.5).clamp(0.0, 1.0));
        let score = if similarity.is_some() {
            0.7 * rule_scores[index] + 0.3 * model
        } else {
            rule_scores[index]
        };
        if score > best.1 {
            best = (*doc_type, score);
        }
    }
    if best.1 < 0.2 {
        return (DocType::Other, 1.0 - best.1);
    }
    (best.0, best.1.clamp(0.0, 1.0))
}

#[cfg(all(test, feature = "ssr"))]
mod tests {
    use super::*;

    fn kind(text: &str) -> DocType {
        decide(&rule_scores(text), None).0
    }

    #[test]
    fn typical_documents_get_their_type() {
        assert_eq!(
            kind("INVOICE\nInvoice No. 42\nBill to: Ann\nTotal 10.00 EUR\nPayment due: 2026-01-01"),
            DocType::Invoice
        );
        assert_eq!(
            kind("Счёт на оплату № 17\nИНН 7701234567\nИтого к оплате 1 000 руб."),
            DocType::Invoice
        );
        assert_eq!(
            kind("RECEIPT\nCashier: Anna\nCoffee 3.50\nTotal 3.50 EUR\nChange 0.50"),
            DocType::Receipt
        );
        assert_eq!(
            kind(
                "PASSPORT\nSurname: SMITH\nGiven names: JOHN\nDate of birth: 14.07.1985\nNationality: BRITISH"
            ),
            DocType::IdDocument
        );
        assert_eq!(
            kind(
                "ПАСПОРТ ГРАЖДАНИНА РОССИЙСКОЙ ФЕДЕРАЦИИ\nФамилия Петрова\nДата рождения 03.05.1990"
            ),
            DocType::IdDocument
        );
        assert_eq!(
            kind(
                "RENTAL AGREEMENT\nbetween the landlord, hereinafter the Landlord, and the tenant. The parties agree"
            ),
            DocType::Contract
        );
        assert_eq!(
            kind("Account statement\nOpening balance 100.00\nClosing balance 80.00"),
            DocType::BankStatement
        );
        assert_eq!(
            kind("Dear Ann,\nthank you for your letter.\nSincerely, Bob"),
            DocType::Letter
        );
        assert_eq!(
            kind("Patient: John Smith\nDiagnosis: influenza\nPrescription: rest"),
            DocType::Medical
        );
        assert_eq!(kind("shopping list: milk, bread"), DocType::Other);
    }

    #[test]
    fn the_model_decides_when_no_rule_fires() {
        let mut similarity = [0.05f32; 8];
        similarity[4] = 0.6;
        assert_eq!(
            decide(&[0.0; 8], Some(&similarity)).0,
            DocType::BankStatement
        );
        assert_eq!(DocType::parse("id_document"), Some(DocType::IdDocument));
    }
}
