//! Every text the bot sends: one enum variant per message, rendered per language. English and
//! Russian, picked from the Telegram user's `language_code`. Dynamic values are HTML-escaped
//! here, because every message is sent with `parse_mode=HTML`.

use app::documents::DocStatus;
use app::documents::classify::DocType;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    Ru,
}

impl Lang {
    /// Telegram's `language_code` (IETF tag such as `ru`, `ru-RU`, `en-GB`); English otherwise.
    pub fn from_code(code: Option<&str>) -> Self {
        match code.map(|c| {
            c.split(['-', '_'])
                .next()
                .unwrap_or("")
                .to_ascii_lowercase()
        }) {
            Some(primary) if primary == "ru" || primary == "uk" || primary == "be" => Self::Ru,
            _ => Self::En,
        }
    }
}

/// Escapes text for Telegram's HTML parse mode.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

#[derive(Debug, Clone, PartialEq)]
pub enum Text {
    /// `/start` by someone not linked yet.
    WelcomeNew {
        first_name: String,
        account_url: String,
    },
    /// `/start` by a linked person.
    WelcomeBack {
        email: String,
    },
    Help,
    /// `/settings`: the text above the Mini App button.
    Settings,
    SettingsButton,
    DocsButton,
    /// Anything that needs a linked account, from someone not linked.
    LinkFirst {
        account_url: String,
    },
    UnknownCommand {
        command: String,
    },
    /// Stickers, voice, video notes, locations and the like.
    Unsupported,
    /// Plain text the bot cannot act on yet.
    NotUnderstood,
    /// A button press the bot does not recognise (old keyboard, forged data).
    ButtonExpired,
    /// The API is down or busy.
    TryLater,
    /// Anything unexpected; the incident id lets an operator find the log line.
    SomethingWrong {
        incident: Option<String>,
    },
    MenuButton,
    /// `/start <token>` linked the chat.
    Linked {
        email: String,
    },
    /// `/start <token>`: which account the chat would join; Approve / Decline below.
    LinkQuestion {
        email: String,
    },
    /// Decline pressed under `LinkQuestion`.
    LinkDeclined,
    /// `/start <token>` in a chat that is linked already.
    AlreadyLinked {
        email: String,
    },
    /// `/start <token>` sent in a group.
    LinkPrivateOnly,
    LinkExpired,
    LinkUsed,
    /// The chat or the account is linked elsewhere.
    LinkConflict,
    Unlinked,
    /// A push-link request from the web.
    PushLinkQuestion {
        email: String,
        /// The host of the Dossier that asks.
        site: String,
    },
    PushBlock,
    PushBlocked,
    Approve,
    Decline,
    PushDeclined,
    PushExpired,
    PushAlreadyAnswered,
    PushNotForYou,
    /// A file is on its way to the archive.
    Uploading {
        name: String,
    },
    Uploaded {
        name: String,
    },
    /// Photos sent together (a Telegram album) become one document.
    AlbumUploaded {
        photos: u32,
    },
    /// The same file was already in the archive.
    Duplicate {
        name: String,
        status: DocStatus,
    },
    TooLarge {
        name: String,
        max_mb: u64,
    },
    /// The API refused the file; `reason` is its words.
    UploadRefused {
        reason: String,
    },
    /// The notification: every stage finished.
    Processed {
        name: String,
        doc_type: DocType,
        key_fields: Vec<String>,
    },
    /// The notification: the document could not be processed.
    ProcessingFailed {
        name: String,
        reason: String,
    },
    /// A question whose answer is not in the person's documents.
    NotFound,
    /// `/ask` without a question.
    AskHow,
    /// An answer: generated text (with [n] citations) and/or quoted passages, then sources.
    Answer {
        generated: Option<String>,
        /// (source number, quoted text)
        passages: Vec<(u32, String)>,
        /// (source number, file name, page)
        sources: Vec<(u32, String, u32)>,
    },
    /// A generated answer while it is still being written.
    AnswerGrowing {
        text: String,
    },
    /// Questions come too fast.
    AskTooFast {
        retry_after_secs: u64,
    },
    QuestionTooLong {
        max: usize,
    },
    /// The label of a source button.
    SourceButton {
        n: u32,
        file_name: String,
        page: u32,
    },
    /// A tapped source that is gone (deleted, or never the person's).
    SourceGone,
    DocsEmpty,
    /// `/docs`: the latest documents, one line each.
    DocsList {
        documents: Vec<DocLine>,
    },
}

/// One document in `/docs`.
#[derive(Debug, Clone, PartialEq)]
pub struct DocLine {
    pub name: String,
    pub status: DocStatus,
    pub doc_type: Option<DocType>,
    pub detail: Option<String>,
}

fn status_label(status: DocStatus, lang: Lang) -> &'static str {
    match (status, lang) {
        (DocStatus::Queued, Lang::En) => "queued",
        (DocStatus::Queued, Lang::Ru) => "в очереди",
        (DocStatus::Processing, Lang::En) => "processing",
        (DocStatus::Processing, Lang::Ru) => "обрабатывается",
        (DocStatus::Processed, Lang::En) => "processed",
        (DocStatus::Processed, Lang::Ru) => "обработан",
        (DocStatus::Failed, Lang::En) => "failed",
        (DocStatus::Failed, Lang::Ru) => "ошибка",
        (DocStatus::Unsupported, Lang::En) => "not supported",
        (DocStatus::Unsupported, Lang::Ru) => "не поддерживается",
    }
}

fn status_icon(status: DocStatus) -> &'static str {
    match status {
        DocStatus::Queued | DocStatus::Processing => "⏳",
        DocStatus::Processed => "✅",
        DocStatus::Failed | DocStatus::Unsupported => "⚠️",
    }
}

fn type_label(doc_type: DocType, lang: Lang) -> &'static str {
    match lang {
        Lang::En => doc_type.label(),
        Lang::Ru => doc_type.label_ru(),
    }
}

fn doc_line(line: &DocLine, lang: Lang) -> String {
    let mut text = format!("{} <b>{}</b>", status_icon(line.status), escape(&line.name));
    match (line.status, line.doc_type) {
        (DocStatus::Processed, Some(doc_type)) => {
            text.push_str(" — ");
            text.push_str(type_label(doc_type, lang));
        }
        (status, _) => {
            text.push_str(" — ");
            text.push_str(status_label(status, lang));
        }
    }
    if let Some(detail) = &line.detail {
        text.push_str(": ");
        text.push_str(&escape(detail));
    }
    text
}

impl Text {
    pub fn render(&self, lang: Lang) -> String {
        use Lang::{En, Ru};
        match (self, lang) {
            (Self::WelcomeNew { first_name, account_url }, En) => format!(
                "Hello, {}! I keep your documents and answer questions about them.\n\nTo start, link this chat to your Dossier account: sign in at {} and choose <b>Link Telegram</b>.",
                escape(first_name),
                escape(account_url)
            ),
            (Self::WelcomeNew { first_name, account_url }, Ru) => format!(
                "Здравствуйте, {}! Я храню ваши документы и отвечаю на вопросы о них.\n\nЧтобы начать, свяжите этот чат с аккаунтом Dossier: войдите на {} и выберите <b>Link Telegram</b>.",
                escape(first_name),
                escape(account_url)
            ),
            (Self::WelcomeBack { email }, En) => format!(
                "Welcome back! This chat is linked to <b>{}</b>.\nSend me documents or photos, or ask a question.",
                escape(email)
            ),
            (Self::WelcomeBack { email }, Ru) => format!(
                "С возвращением! Этот чат связан с <b>{}</b>.\nПрисылайте документы и фото или задайте вопрос.",
                escape(email)
            ),
            (Self::Help, En) => "<b>Dossier</b> keeps your papers.\n\n• Send a document or a photo: I file it, read it and tell you when it is processed.\n• Ask a question in plain words (or /ask …): I answer from your documents and show the sources.\n\n/docs — your documents\n/settings — settings and notifications\n/unlink — unlink this chat\n/help — this message".into(),
            (Self::Help, Ru) => "<b>Dossier</b> хранит ваши бумаги.\n\n• Пришлите документ или фото: я сохраню его, прочитаю и сообщу, когда он обработан.\n• Задайте вопрос обычными словами (или /ask …): я отвечу по вашим документам и покажу источники.\n\n/docs — ваши документы\n/settings — настройки и уведомления\n/unlink — отвязать этот чат\n/help — эта справка".into(),
            (Self::Settings, En) => "Settings, notifications and passkeys are in the Dossier app:".into(),
            (Self::Settings, Ru) => "Настройки, уведомления и ключи доступа — в приложении Dossier:".into(),
            (Self::SettingsButton, En) => "Open settings".into(),
            (Self::SettingsButton, Ru) => "Открыть настройки".into(),
            (Self::DocsButton, En) => "Open documents".into(),
            (Self::DocsButton, Ru) => "Открыть документы".into(),
            (Self::LinkFirst { account_url }, En) => format!(
                "This chat is not linked to a Dossier account yet. Sign in at {} and choose <b>Link Telegram</b>.",
                escape(account_url)
            ),
            (Self::LinkFirst { account_url }, Ru) => format!(
                "Этот чат ещё не связан с аккаунтом Dossier. Войдите на {} и выберите <b>Link Telegram</b>.",
                escape(account_url)
            ),
            (Self::UnknownCommand { command }, En) => format!(
                "I don't know the command {}. Try /help.",
                escape(command)
            ),
            (Self::UnknownCommand { command }, Ru) => format!(
                "Я не знаю команду {}. Попробуйте /help.",
                escape(command)
            ),
            (Self::Unsupported, En) => "I can file documents and photos and answer questions written in text. Stickers, voice messages and the like are not something I can keep.".into(),
            (Self::Unsupported, Ru) => "Я сохраняю документы и фото и отвечаю на текстовые вопросы. Стикеры, голосовые сообщения и подобное я сохранить не могу.".into(),
            (Self::NotUnderstood, En) => "I didn't understand that. Send a document or photo, or see /help.".into(),
            (Self::NotUnderstood, Ru) => "Я не понял. Пришлите документ или фото или посмотрите /help.".into(),
            (Self::ButtonExpired, En) => "This button has expired.".into(),
            (Self::ButtonExpired, Ru) => "Эта кнопка устарела.".into(),
            (Self::TryLater, En) => "Dossier is busy right now. Please try again in a minute.".into(),
            (Self::TryLater, Ru) => "Dossier сейчас занят. Попробуйте через минуту.".into(),
            (Self::SomethingWrong { incident: Some(id) }, En) => format!(
                "Something went wrong on our side. If it keeps happening, quote incident <code>{}</code>.",
                escape(id)
            ),
            (Self::SomethingWrong { incident: Some(id) }, Ru) => format!(
                "У нас что-то пошло не так. Если ошибка повторяется, сообщите номер инцидента <code>{}</code>.",
                escape(id)
            ),
            (Self::SomethingWrong { incident: None }, En) => "Something went wrong on our side. Please try again.".into(),
            (Self::SomethingWrong { incident: None }, Ru) => "У нас что-то пошло не так. Попробуйте ещё раз.".into(),
            (Self::MenuButton, En) => "Dossier".into(),
            (Self::MenuButton, Ru) => "Dossier".into(),
            (Self::Linked { email }, En) => format!(
                "✅ Account linked: <b>{}</b>.\nSend me documents or photos, or ask a question.",
                escape(email)
            ),
            (Self::Linked { email }, Ru) => format!(
                "✅ Аккаунт связан: <b>{}</b>.\nПрисылайте документы и фото или задайте вопрос.",
                escape(email)
            ),
            (Self::LinkQuestion { email }, En) => format!(
                "Link this Telegram account to the Dossier account <b>{}</b>?\nEverything you send me afterwards goes to that account's archive. Approve only if you made this link yourself on your own settings page.",
                escape(email)
            ),
            (Self::LinkQuestion { email }, Ru) => format!(
                "Связать этот аккаунт Telegram с аккаунтом Dossier <b>{}</b>?\nВсё, что вы пришлёте мне потом, попадёт в архив этого аккаунта. Подтверждайте, только если вы сами создали эту ссылку на своей странице настроек.",
                escape(email)
            ),
            (Self::LinkDeclined, En) => "❌ Declined. This chat was not linked, and the link no longer works.".into(),
            (Self::LinkDeclined, Ru) => "❌ Отклонено. Чат не связан, ссылка больше не действует.".into(),
            (Self::AlreadyLinked { email }, En) => format!(
                "This chat is already linked to <b>{}</b>. A link never moves a linked chat: send /unlink first if you want to link another account.",
                escape(email)
            ),
            (Self::AlreadyLinked { email }, Ru) => format!(
                "Этот чат уже связан с <b>{}</b>. Ссылка не переносит связанный чат: сначала отправьте /unlink, если хотите связать другой аккаунт.",
                escape(email)
            ),
            (Self::LinkPrivateOnly, En) => "Links work only in a private chat with me: open the link from your settings page in Telegram, not in a group.".into(),
            (Self::LinkPrivateOnly, Ru) => "Ссылки работают только в личном чате со мной: откройте ссылку со страницы настроек в Telegram, не в группе.".into(),
            (Self::LinkExpired, En) => "This link has expired or is not valid. Create a new one on the settings page and open it within 5 minutes.".into(),
            (Self::LinkExpired, Ru) => "Ссылка устарела или недействительна. Создайте новую на странице настроек и откройте её в течение 5 минут.".into(),
            (Self::LinkUsed, En) => "This link was already used. Each link works once; create a new one on the settings page.".into(),
            (Self::LinkUsed, Ru) => "Эта ссылка уже использована. Каждая ссылка работает один раз; создайте новую на странице настроек.".into(),
            (Self::LinkConflict, En) => "This chat or that Dossier account is already linked elsewhere. Send /unlink here, or unlink on the settings page, then try again.".into(),
            (Self::LinkConflict, Ru) => "Этот чат или этот аккаунт Dossier уже связан с другим. Отправьте /unlink здесь или отвяжите на странице настроек и попробуйте снова.".into(),
            (Self::Unlinked, En) => "This chat is no longer linked to your Dossier account.".into(),
            (Self::PushLinkQuestion { email, site }, En) => format!(
                "Someone on <b>{}</b> asks to link this Telegram account to the Dossier account <b>{}</b> (an address nobody has verified).\nApprove only if you asked for this yourself, just now. Otherwise decline, or block such requests.",
                escape(site),
                escape(email)
            ),
            (Self::PushLinkQuestion { email, site }, Ru) => format!(
                "На <b>{}</b> просят связать этот аккаунт Telegram с аккаунтом Dossier <b>{}</b> (адрес никем не проверен).\nПодтверждайте, только если сами только что это запросили. Иначе отклоните или заблокируйте такие запросы.",
                escape(site),
                escape(email)
            ),
            (Self::PushBlock, En) => "🚫 Block such requests".into(),
            (Self::PushBlock, Ru) => "🚫 Блокировать такие запросы".into(),
            (Self::PushBlocked, En) => "🚫 Declined and blocked: no more link requests will reach you. To link an account yourself, open the link from its settings page.".into(),
            (Self::PushBlocked, Ru) => "🚫 Отклонено и заблокировано: запросы на связь больше не придут. Чтобы связать аккаунт самим, откройте ссылку со страницы его настроек.".into(),
            (Self::Approve, En) => "✅ Approve".into(),
            (Self::Approve, Ru) => "✅ Подтвердить".into(),
            (Self::Decline, En) => "❌ Decline".into(),
            (Self::Decline, Ru) => "❌ Отклонить".into(),
            (Self::PushDeclined, En) => "❌ Declined. This chat was not linked.".into(),
            (Self::PushDeclined, Ru) => "❌ Отклонено. Чат не связан.".into(),
            (Self::PushExpired, En) => "This request has expired. Send a new one from the settings page.".into(),
            (Self::PushExpired, Ru) => "Запрос устарел. Отправьте новый со страницы настроек.".into(),
            (Self::PushAlreadyAnswered, En) => "This request was already answered.".into(),
            (Self::PushAlreadyAnswered, Ru) => "На этот запрос уже ответили.".into(),
            (Self::PushNotForYou, En) => "This request is not for you.".into(),
            (Self::PushNotForYou, Ru) => "Этот запрос не для вас.".into(),
            (Self::Unlinked, Ru) => "Этот чат больше не связан с вашим аккаунтом Dossier.".into(),
            (Self::Uploading { name }, En) => format!("📤 Uploading <b>{}</b>…", escape(name)),
            (Self::Uploading { name }, Ru) => format!("📤 Загружаю <b>{}</b>…", escape(name)),
            (Self::Uploaded { name }, En) => format!("✅ Uploaded <b>{}</b>, processing…", escape(name)),
            (Self::Uploaded { name }, Ru) => format!("✅ <b>{}</b> загружен, обрабатываю…", escape(name)),
            (Self::AlbumUploaded { photos: 1 }, En) => "✅ Uploaded a photo, processing…".into(),
            (Self::AlbumUploaded { photos }, En) => format!("✅ Uploaded {photos} photos as one document, processing…"),
            (Self::AlbumUploaded { photos }, Ru) => format!("✅ Загружено фото: {photos}, это один документ; обрабатываю…"),
            (Self::Duplicate { name, status }, En) => format!(
                "This file is already in your archive as <b>{}</b> ({}).",
                escape(name),
                status_label(*status, En)
            ),
            (Self::Duplicate { name, status }, Ru) => format!(
                "Этот файл уже есть в архиве: <b>{}</b> ({}).",
                escape(name),
                status_label(*status, Ru)
            ),
            (Self::TooLarge { name, max_mb }, En) => format!(
                "⚠️ <b>{}</b> is too large: I can take files up to {max_mb} MB.",
                escape(name)
            ),
            (Self::TooLarge { name, max_mb }, Ru) => format!(
                "⚠️ <b>{}</b> слишком большой: я принимаю файлы до {max_mb} МБ.",
                escape(name)
            ),
            (Self::UploadRefused { reason }, En) => format!("⚠️ I could not take this file: {}", escape(reason)),
            (Self::UploadRefused { reason }, Ru) => format!("⚠️ Не удалось принять файл: {}", escape(reason)),
            (Self::Processed { name, doc_type, key_fields }, lang) => {
                let mut text = match lang {
                    En => format!("✅ <b>{}</b> processed — {}", escape(name), type_label(*doc_type, En)),
                    Ru => format!("✅ <b>{}</b> обработан — {}", escape(name), type_label(*doc_type, Ru)),
                };
                for field in key_fields {
                    text.push_str(", ");
                    text.push_str(&escape(field));
                }
                text
            }
            (Self::ProcessingFailed { name, reason }, En) => format!(
                "⚠️ <b>{}</b> could not be processed: {}",
                escape(name),
                escape(reason)
            ),
            (Self::ProcessingFailed { name, reason }, Ru) => format!(
                "⚠️ <b>{}</b> не удалось обработать: {}",
                escape(name),
                escape(reason)
            ),
            (Self::AskHow, En) => "Ask me anything about your documents, e.g. <code>/ask what is my passport number?</code> — or just type the question.".into(),
            (Self::AskHow, Ru) => "Спросите что угодно о ваших документах, например <code>/ask какой номер паспорта?</code> — или просто напишите вопрос.".into(),
            (Self::NotFound, En) => "I could not find this in your documents.".into(),
            (Self::NotFound, Ru) => "Я не нашёл этого в ваших документах.".into(),
            (Self::Answer { generated, passages, sources }, lang) => {
                let mut text = String::new();
                if let Some(generated) = generated {
                    text.push_str(&escape(generated));
                    text.push_str("\n\n");
                } else {
                    text.push_str(match lang {
                        En => "From your documents:\n\n",
                        Ru => "Из ваших документов:\n\n",
                    });
                    for (n, passage) in passages {
                        text.push_str(&format!("«{}» [{n}]\n", escape(passage)));
                    }
                    text.push('\n');
                }
                text.push_str(match lang {
                    En => "<b>Sources</b>",
                    Ru => "<b>Источники</b>",
                });
                for (n, name, page) in sources {
                    let page = match lang {
                        En => format!("page {page}"),
                        Ru => format!("стр. {page}"),
                    };
                    text.push_str(&format!("\n[{n}] {} · {page}", escape(name)));
                }
                text
            }
            (Self::AnswerGrowing { text }, _) => format!("{} ▍", escape(text)),
            (Self::AskTooFast { retry_after_secs }, En) => format!(
                "You are asking faster than I can look. Please try again in {retry_after_secs} s."
            ),
            (Self::AskTooFast { retry_after_secs }, Ru) => format!(
                "Слишком много вопросов подряд. Попробуйте снова через {retry_after_secs} с."
            ),
            (Self::QuestionTooLong { max }, En) => {
                format!("That question is too long: please ask in at most {max} characters.")
            }
            (Self::QuestionTooLong { max }, Ru) => {
                format!("Слишком длинный вопрос: не больше {max} символов, пожалуйста.")
            }
            (Self::SourceButton { n, file_name, page }, lang) => {
                let mut name: String = file_name.chars().take(28).collect();
                if file_name.chars().count() > 28 {
                    name.push('…');
                }
                match lang {
                    En => format!("📄 [{n}] {name} · p. {page}"),
                    Ru => format!("📄 [{n}] {name} · стр. {page}"),
                }
            }
            (Self::SourceGone, En) => "This document is no longer in your archive.".into(),
            (Self::SourceGone, Ru) => "Этого документа больше нет в вашем архиве.".into(),
            (Self::DocsEmpty, En) => "Your archive is empty. Send me a document or a photo to start.".into(),
            (Self::DocsEmpty, Ru) => "Архив пуст. Пришлите документ или фото, чтобы начать.".into(),
            (Self::DocsList { documents }, lang) => {
                let mut text = match lang {
                    En => "Your latest documents:".to_owned(),
                    Ru => "Ваши последние документы:".to_owned(),
                };
                for line in documents {
                    text.push('\n');
                    text.push_str(&doc_line(line, lang));
                }
                text
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn languages_come_from_telegram_codes() {
        assert_eq!(Lang::from_code(Some("ru")), Lang::Ru);
        assert_eq!(Lang::from_code(Some("ru-RU")), Lang::Ru);
        assert_eq!(Lang::from_code(Some("en-GB")), Lang::En);
        assert_eq!(Lang::from_code(Some("de")), Lang::En);
        assert_eq!(Lang::from_code(None), Lang::En);
    }

    #[test]
    fn dynamic_values_are_escaped() {
        let text = Text::WelcomeBack {
            email: "<b>x</b>&@y.org".into(),
        }
        .render(Lang::En);
        assert!(text.contains("&lt;b&gt;x&lt;/b&gt;&amp;@y.org"), "{text}");
        let text = Text::UnknownCommand {
            command: "/x<script>".into(),
        }
        .render(Lang::Ru);
        assert!(text.contains("/x&lt;script&gt;"), "{text}");
    }
}
