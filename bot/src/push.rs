//! Push-link requests: the API publishes `{env}.telegram.push-link.requested`; one bot
//! replica (queue group) sends "Link to account <email>?" with Approve / Decline buttons. The
//! tap comes back as a callback query (`pl:a:<id>` / `pl:d:<id>`), answered through the API,
//! which accepts it only from the addressed Telegram user, once.

use std::sync::Arc;

use app::error::ApiError;
use app::telegram::push::{PushAnswer, PushLinkRequested, PushStatus};
use futures::StreamExt;
use serde_json::json;
use teloxide::prelude::*;
use teloxide::types::{CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, ParseMode};
use tokio_util::sync::CancellationToken;

use crate::Ctx;
use crate::i18n::{Lang, Text};

const APPROVE: &str = "pl:a:";
const DECLINE: &str = "pl:d:";

pub async fn run(
    ctx: Arc<Ctx>,
    nats: async_nats::Client,
    env: String,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let subject = format!("{env}.telegram.push-link.requested");
    let mut messages = nats.queue_subscribe(subject, "dossier-bot".into()).await?;
    loop {
        let message = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            message = messages.next() => match message {
                Some(message) => message,
                None => return Ok(()),
            },
        };
        let request: PushLinkRequested = match serde_json::from_slice(&message.payload) {
            Ok(request) => request,
            Err(error) => {
                tracing::warn!(%error, "an undecodable push-link request was dropped");
                continue;
            }
        };
        if let Err(error) = ask(&ctx, &request).await {
            tracing::warn!(%error, "a push-link request could not be delivered");
        }
    }
}

async fn ask(ctx: &Ctx, request: &PushLinkRequested) -> anyhow::Result<()> {
    let lang = Lang::from_code(request.language_code.as_deref());
    let keyboard = InlineKeyboardMarkup::new([[
        InlineKeyboardButton::callback(
            Text::Approve.render(lang),
            format!("{APPROVE}{}", request.request_id),
        ),
        InlineKeyboardButton::callback(
            Text::Decline.render(lang),
            format!("{DECLINE}{}", request.request_id),
        ),
    ]]);
    let chat = ChatId(request.chat_id);
    let message = ctx
        .bot
        .send_message(
            chat,
            Text::PushLinkQuestion {
                email: request.email.clone(),
            }
            .render(lang),
        )
        .parse_mode(ParseMode::Html)
        .reply_markup(keyboard);
    ctx.pacer.send(request.chat_id, message).await?;
    Ok(())
}

/// A tap on Approve / Decline; `None` when the data is not a push-link button.
pub async fn on_callback(ctx: &Ctx, query: &CallbackQuery) -> Option<anyhow::Result<()>> {
    let (approve, request_id) = parse_push(query.data.as_deref()?)?;
    Some(answer(ctx, query, approve, request_id).await)
}

/// `pl:a:<id>` (approve) or `pl:d:<id>` (decline) with the request id as the server makes it
/// (32 lower-case hex digits); anything else is not a push-link button.
pub fn parse_push(data: &str) -> Option<(bool, &str)> {
    let (approve, id) = if let Some(id) = data.strip_prefix(APPROVE) {
        (true, id)
    } else {
        (false, data.strip_prefix(DECLINE)?)
    };
    let well_formed = id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    well_formed.then_some((approve, id))
}

async fn answer(
    ctx: &Ctx,
    query: &CallbackQuery,
    approve: bool,
    request_id: &str,
) -> anyhow::Result<()> {
    let lang = Lang::from_code(query.from.language_code.as_deref());
    let telegram_user = i64::try_from(query.from.id.0).unwrap_or(0);
    let result: Result<PushAnswer, ApiError> = ctx
        .api
        .call(
            "telegram/push-link/answer",
            Some(telegram_user),
            &json!({ "request_id": request_id, "approve": approve }),
        )
        .await;
    let (outcome, toast) = match result {
        Ok(PushAnswer {
            status: PushStatus::Approved,
            email,
        }) => (Some(Text::Linked { email }), None),
        Ok(_) => (Some(Text::PushDeclined), None),
        Err(ApiError::LinkExpired) => (Some(Text::PushExpired), None),
        Err(ApiError::LinkUsed) => (None, Some(Text::PushAlreadyAnswered)),
        Err(ApiError::Forbidden) => (None, Some(Text::PushNotForYou)),
        Err(ApiError::Conflict { .. }) => (Some(Text::LinkConflict), None),
        Err(_) => (None, Some(Text::TryLater)),
    };
    let mut answer = ctx.bot.answer_callback_query(query.id.clone());
    if let Some(toast) = &toast {
        answer = answer.text(toast.render(lang));
    }
    crate::metrics::send(answer).await?;
    // The question becomes its outcome (and loses its buttons).
    if let (Some(outcome), Some(message)) = (outcome, query.regular_message()) {
        ctx.bot
            .edit_message_text(message.chat.id, message.id, outcome.render(lang))
            .parse_mode(ParseMode::Html)
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn push_buttons_parse_only_when_well_formed() {
        let id = uuid::Uuid::new_v4().simple().to_string();
        assert_eq!(parse_push(&format!("pl:a:{id}")), Some((true, id.as_str())));
        assert_eq!(
            parse_push(&format!("pl:d:{id}")),
            Some((false, id.as_str()))
        );
        for bad in [
            "pl:a:".to_owned(),
            format!("pl:x:{id}"),
            format!("pl:a:{}", id.to_uppercase()),
            format!("pl:a:{id}0"),
            format!("pl:a:../{}", &id[3..]),
            format!("doc:{id}"),
        ] {
            assert_eq!(parse_push(&bad), None, "{bad}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(5000))]

        /// Telegram hands back whatever a client sends as callback data (up to 64 bytes, but a
        /// forged update may carry anything): parsing never panics, and what parses is exactly
        /// a button the bot could have made.
        #[test]
        fn any_callback_data_parses_only_to_buttons_the_bot_makes(data in ".{0,80}") {
            if let Some((approve, id)) = parse_push(&data) {
                let prefix = if approve { APPROVE } else { DECLINE };
                prop_assert_eq!(format!("{prefix}{id}"), data.clone());
            }
            if let Some(document) = crate::ask::parse_source(&data) {
                prop_assert_eq!(format!("doc:{document}"), data.clone());
            }
        }

        #[test]
        fn button_shaped_data_round_trips(approve in any::<bool>(), id in "[0-9a-f]{32}", noise in "[ -~]{0,3}") {
            let prefix = if approve { APPROVE } else { DECLINE };
            let data = format!("{prefix}{id}");
            prop_assert_eq!(parse_push(&data), Some((approve, id.as_str())));
            let noisy = format!("{data}{noise}");
            prop_assert_eq!(parse_push(&noisy).is_some(), noise.is_empty());
        }
    }
}
