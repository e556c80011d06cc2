//! Every text the bot sends: one enum variant per message, rendered per language. English and
//! Russian, picked from the Telegram user's `language_code`. Dynamic values are HTML-escaped
//! here, because every message is sent with `parse_mode=HTML`.

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

#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// `/docs`: the text above the documents button.
    Docs,
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
    LinkExpired,
    LinkUsed,
    /// The chat or the account is linked elsewhere.
    LinkConflict,
    Unlinked,
    /// A push-link request from the web.
    PushLinkQuestion {
        email: String,
    },
    Approve,
    Decline,
    PushDeclined,
    PushExpired,
    PushAlreadyAnswered,
    PushNotForYou,
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
            (Self::Help, En) => "<b>Dossier</b> keeps your papers.\n\n• Send a document or a photo: I file it, read it and tell you when it is processed.\n• Ask a question in plain words: I answer from your documents and show the sources.\n\n/docs — your documents\n/settings — settings and notifications\n/unlink — unlink this chat\n/help — this message".into(),
            (Self::Help, Ru) => "<b>Dossier</b> хранит ваши бумаги.\n\n• Пришлите документ или фото: я сохраню его, прочитаю и сообщу, когда он обработан.\n• Задайте вопрос обычными словами: я отвечу по вашим документам и покажу источники.\n\n/docs — ваши документы\n/settings — настройки и уведомления\n/unlink — отвязать этот чат\n/help — эта справка".into(),
            (Self::Settings, En) => "Settings, notifications and passkeys are in the Dossier app:".into(),
            (Self::Settings, Ru) => "Настройки, уведомления и ключи доступа — в приложении Dossier:".into(),
            (Self::SettingsButton, En) => "Open settings".into(),
            (Self::SettingsButton, Ru) => "Открыть настройки".into(),
            (Self::Docs, En) => "Your documents are in the Dossier app:".into(),
            (Self::Docs, Ru) => "Ваши документы — в приложении Dossier:".into(),
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
            (Self::LinkExpired, En) => "This link has expired or is not valid. Create a new one on the settings page and open it within 5 minutes.".into(),
            (Self::LinkExpired, Ru) => "Ссылка устарела или недействительна. Создайте новую на странице настроек и откройте её в течение 5 минут.".into(),
            (Self::LinkUsed, En) => "This link was already used. Each link works once; create a new one on the settings page.".into(),
            (Self::LinkUsed, Ru) => "Эта ссылка уже использована. Каждая ссылка работает один раз; создайте новую на странице настроек.".into(),
            (Self::LinkConflict, En) => "This chat or that Dossier account is already linked elsewhere. Send /unlink here, or unlink on the settings page, then try again.".into(),
            (Self::LinkConflict, Ru) => "Этот чат или этот аккаунт Dossier уже связан с другим. Отправьте /unlink здесь или отвяжите на странице настроек и попробуйте снова.".into(),
            (Self::Unlinked, En) => "This chat is no longer linked to your Dossier account.".into(),
            (Self::PushLinkQuestion { email }, En) => format!(
                "Link this Telegram account to the Dossier account <b>{}</b>?\nIf you did not ask for this, decline.",
                escape(email)
            ),
            (Self::PushLinkQuestion { email }, Ru) => format!(
                "Связать этот аккаунт Telegram с аккаунтом Dossier <b>{}</b>?\nЕсли вы этого не запрашивали, отклоните.",
                escape(email)
            ),
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
