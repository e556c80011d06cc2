//! Linking by deep link, with consent: `/start <token>` only claims the token
//! (`telegram/link/claim`) and asks "Link this Telegram account to <email>?" with Approve /
//! Decline (`lk:a:<token>` / `lk:d:<token>`); only the tap links (`telegram/link/confirm`).
//! A link made by someone else therefore never joins a stranger's chat to their archive with
//! one tap.

use app::error::ApiError;
use app::telegram::TelegramStatus;
use app::telegram::link::{LinkConfirmed, LinkOutcome};
use serde_json::json;
use teloxide::prelude::*;
use teloxide::types::{CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, ParseMode, User};

use crate::Ctx;
use crate::i18n::{Lang, Text};

const APPROVE: &str = "lk:a:";
const DECLINE: &str = "lk:d:";

fn telegram_id(user: &User) -> i64 {
    i64::try_from(user.id.0).unwrap_or(0)
}

/// `/start <token>` in a private chat.
pub async fn on_start(
    ctx: &Ctx,
    chat: ChatId,
    user: &User,
    lang: Lang,
    status: &TelegramStatus,
    token: &str,
) -> anyhow::Result<()> {
    // A linked chat is never re-linked by a token, whoever made it.
    if let (true, Some(email)) = (status.linked, &status.email) {
        let text = Text::AlreadyLinked {
            email: email.clone(),
        };
        crate::handlers::say(ctx, chat, &text, lang).await?;
        return Ok(());
    }
    let claimed: Result<String, ApiError> = ctx
        .api
        .call(
            "telegram/link/claim",
            Some(telegram_id(user)),
            &json!({ "token": token }),
        )
        .await;
    let text = match claimed {
        Ok(email) => {
            let keyboard = InlineKeyboardMarkup::new([[
                InlineKeyboardButton::callback(
                    Text::Approve.render(lang),
                    format!("{APPROVE}{token}"),
                ),
                InlineKeyboardButton::callback(
                    Text::Decline.render(lang),
                    format!("{DECLINE}{token}"),
                ),
            ]]);
            let question = ctx
                .bot
                .send_message(chat, Text::LinkQuestion { email }.render(lang))
                .parse_mode(ParseMode::Html)
                .reply_markup(keyboard);
            ctx.pacer.send(chat.0, question).await?;
            return Ok(());
        }
        Err(ApiError::LinkExpired) => Text::LinkExpired,
        Err(ApiError::LinkUsed) => Text::LinkUsed,
        Err(ApiError::Conflict { .. }) => Text::LinkConflict,
        Err(error) => return crate::handlers::say_error(ctx, chat, lang, &error).await,
    };
    crate::handlers::say(ctx, chat, &text, lang).await?;
    Ok(())
}

/// `lk:a:<token>` or `lk:d:<token>` with a token as the server makes it (43 URL-safe
/// characters); anything else is not a link button.
pub fn parse_confirm(data: &str) -> Option<(bool, &str)> {
    let (approve, token) = if let Some(token) = data.strip_prefix(APPROVE) {
        (true, token)
    } else {
        (false, data.strip_prefix(DECLINE)?)
    };
    let well_formed = token.len() == 43
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    well_formed.then_some((approve, token))
}

/// A tap on Approve / Decline; `None` when the data is not a link button.
pub async fn on_callback(ctx: &Ctx, query: &CallbackQuery) -> Option<anyhow::Result<()>> {
    let (approve, token) = parse_confirm(query.data.as_deref()?)?;
    Some(answer(ctx, query, approve, token).await)
}

async fn answer(
    ctx: &Ctx,
    query: &CallbackQuery,
    approve: bool,
    token: &str,
) -> anyhow::Result<()> {
    let lang = Lang::from_code(query.from.language_code.as_deref());
    let result: Result<LinkConfirmed, ApiError> = ctx
        .api
        .call(
            "telegram/link/confirm",
            Some(telegram_id(&query.from)),
            &json!({ "token": token, "approve": approve }),
        )
        .await;
    let settled = match result {
        Ok(LinkConfirmed {
            outcome: LinkOutcome::Linked,
            email,
        }) => (Some(Text::Linked { email }), None),
        Ok(LinkConfirmed {
            outcome: LinkOutcome::Declined,
            ..
        }) => (Some(Text::LinkDeclined), None),
        Err(error) => crate::handlers::refused_answer(&error, Text::LinkExpired),
    };
    crate::handlers::settle_question(ctx, query, settled, lang).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_buttons_parse_only_when_well_formed() {
        let token = "A".repeat(40) + "-_9";
        assert_eq!(
            parse_confirm(&format!("lk:a:{token}")),
            Some((true, token.as_str()))
        );
        assert_eq!(
            parse_confirm(&format!("lk:d:{token}")),
            Some((false, token.as_str()))
        );
        for bad in [
            "lk:a:".to_owned(),
            format!("lk:x:{token}"),
            format!("lk:a:{token}0"),
            format!("lk:a:{}", &token[1..]),
            format!("lk:a:../{}", &token[3..]),
            format!("lk:a:{}=", &token[1..]),
        ] {
            assert_eq!(parse_confirm(&bad), None, "{bad}");
        }
        // Telegram's limit on callback data is 64 bytes.
        assert!(format!("{APPROVE}{token}").len() <= 64);
    }
}
