//! Push-link requests: the API publishes `{env}.telegram.push-link.requested`; one bot
//! replica (queue group) sends "Link to account <email>?" (saying the address is unverified
//! and which site asks) with Approve / Decline / Block buttons. The tap comes back as a
//! callback query (`pl:a:<id>` / `pl:d:<id>` / `pl:b:<id>`), answered through the API, which
//! accepts it only from the addressed Telegram user, once; Block also stops further requests
//! to them.

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
const BLOCK: &str = "pl:b:";

/// What a push-link button asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    Approve,
    Decline,
    /// Decline, and no more requests to me.
    Block,
}

impl Choice {
    const ALL: [(Self, &'static str); 3] = [
        (Self::Approve, APPROVE),
        (Self::Decline, DECLINE),
        (Self::Block, BLOCK),
    ];

    fn prefix(self) -> &'static str {
        match self {
            Self::Approve => APPROVE,
            Self::Decline => DECLINE,
            Self::Block => BLOCK,
        }
    }
}

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
    let button = |text: Text, choice: Choice| {
        InlineKeyboardButton::callback(
            text.render(lang),
            format!("{}{}", choice.prefix(), request.request_id),
        )
    };
    let keyboard = InlineKeyboardMarkup::new([
        vec![
            button(Text::Approve, Choice::Approve),
            button(Text::Decline, Choice::Decline),
        ],
        vec![button(Text::PushBlock, Choice::Block)],
    ]);
    let site = ctx.public_url.host_str().unwrap_or("Dossier").to_owned();
    let chat = ChatId(request.chat_id);
    let message = ctx
        .bot
        .send_message(
            chat,
            Text::PushLinkQuestion {
                email: request.email.clone(),
                site,
            }
            .render(lang),
        )
        .parse_mode(ParseMode::Html)
        .reply_markup(keyboard);
    ctx.pacer.send(request.chat_id, message).await?;
    Ok(())
}

/// A tap on Approve / Decline / Block; `None` when the data is not a push-link button.
pub async fn on_callback(ctx: &Ctx, query: &CallbackQuery) -> Option<anyhow::Result<()>> {
    let (choice, request_id) = parse_push(query.data.as_deref()?)?;
    Some(answer(ctx, query, choice, request_id).await)
}

/// `pl:a:<id>` (approve), `pl:d:<id>` (decline) or `pl:b:<id>` (block) with the request id as
/// the server makes it (32 lower-case hex digits); anything else is not a push-link button.
pub fn parse_push(data: &str) -> Option<(Choice, &str)> {
    let (choice, id) = Choice::ALL
        .iter()
        .find_map(|(choice, prefix)| data.strip_prefix(prefix).map(|id| (*choice, id)))?;
    let well_formed = id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    well_formed.then_some((choice, id))
}

async fn answer(
    ctx: &Ctx,
    query: &CallbackQuery,
    choice: Choice,
    request_id: &str,
) -> anyhow::Result<()> {
    let lang = Lang::from_code(query.from.language_code.as_deref());
    let telegram_user = i64::try_from(query.from.id.0).unwrap_or(0);
    let result: Result<PushAnswer, ApiError> = match choice {
        Choice::Block => {
            ctx.api
                .call(
                    "telegram/push-link/block",
                    Some(telegram_user),
                    &json!({ "request_id": request_id }),
                )
                .await
        }
        Choice::Approve | Choice::Decline => {
            ctx.api
                .call(
                    "telegram/push-link/answer",
                    Some(telegram_user),
                    &json!({ "request_id": request_id, "approve": choice == Choice::Approve }),
                )
                .await
        }
    };
    let settled = match result {
        Ok(PushAnswer {
            status: PushStatus::Approved,
            email,
        }) => (Some(Text::Linked { email }), None),
        Ok(_) if choice == Choice::Block => (Some(Text::PushBlocked), None),
        Ok(_) => (Some(Text::PushDeclined), None),
        Err(error) => crate::handlers::refused_answer(&error, Text::PushExpired),
    };
    crate::handlers::settle_question(ctx, query, settled, lang).await
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn push_buttons_parse_only_when_well_formed() {
        let id = uuid::Uuid::new_v4().simple().to_string();
        assert_eq!(
            parse_push(&format!("pl:a:{id}")),
            Some((Choice::Approve, id.as_str()))
        );
        assert_eq!(
            parse_push(&format!("pl:d:{id}")),
            Some((Choice::Decline, id.as_str()))
        );
        assert_eq!(
            parse_push(&format!("pl:b:{id}")),
            Some((Choice::Block, id.as_str()))
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
            if let Some((choice, id)) = parse_push(&data) {
                prop_assert_eq!(format!("{}{id}", choice.prefix()), data.clone());
            }
            if let Some(document) = crate::ask::parse_source(&data) {
                prop_assert_eq!(format!("doc:{document}"), data.clone());
            }
        }

        #[test]
        fn button_shaped_data_round_trips(which in 0usize..3, id in "[0-9a-f]{32}", noise in "[ -~]{0,3}") {
            let (choice, prefix) = Choice::ALL[which];
            let data = format!("{prefix}{id}");
            prop_assert_eq!(parse_push(&data), Some((choice, id.as_str())));
            let noisy = format!("{data}{noise}");
            prop_assert_eq!(parse_push(&noisy).is_some(), noise.is_empty());
        }
    }
}
