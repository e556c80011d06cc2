import { test, expect, waitForHydration, signUp, uniqueEmail } from "./fixtures";
import type { APIRequestContext } from "@playwright/test";

// Linking Telegram through the deep link, with the emulator playing the person's Telegram.
const emulator = process.env.EMULATOR_URL ?? "http://127.0.0.1:3181";

async function telegramSays(request: APIRequestContext, user: number, text: string) {
  const response = await request.post(`${emulator}/control/users/${user}/messages`, {
    data: { text, first_name: "Tanya", username: `tanya${user}`, language_code: "en" },
  });
  expect(response.ok()).toBe(true);
}

async function lastReply(request: APIRequestContext, chat: number, count: number): Promise<string> {
  let sent: { text?: string }[] = [];
  await expect
    .poll(async () => {
      sent = await (await request.get(`${emulator}/control/chats/${chat}/sent`)).json();
      return sent.length;
    })
    .toBeGreaterThanOrEqual(count);
  return sent[count - 1].text ?? "";
}

test("link Telegram with the deep link, see it connected, reuse fails, unlink", async ({ page, request }) => {
  const email = await signUp(page, uniqueEmail("link"));
  await page.goto("/settings");
  await waitForHydration(page);
  await page.getByRole("button", { name: "Link Telegram" }).click();
  const link = page.getByTestId("deep-link");
  await expect(link).toHaveText(/^https:\/\/t\.me\/dossier_dev_bot\?start=[A-Za-z0-9_-]{43}$/);
  await expect(page.getByRole("timer")).toHaveText(/Valid for [45]:\d\d/);
  await expect(page.getByLabel("QR code of the link").locator("svg")).toBeVisible();
  const token = new URL((await link.textContent()) ?? "").searchParams.get("start");

  const user = 800000 + Math.floor(Math.random() * 100000);
  await telegramSays(request, user, `/start ${token}`);
  // Opening the link only asks: which account, Approve or Decline. Nothing is linked yet, and
  // the page shows who is confirming.
  expect(await lastReply(request, user, 1)).toContain(`Link this Telegram account to the Dossier account ${email}?`);
  await expect(page.getByTestId("link-pending")).toContainText(`Waiting for confirmation in Telegram from Tanya (@tanya${user})`);
  await expect(page.getByRole("button", { name: "Link Telegram" }).or(page.getByRole("button", { name: "New link" }))).toBeVisible();
  await pressButton(request, user, /Approve/);
  await expect.poll(() => lastReply(request, user, 1)).toContain(`Account linked: ${email}`);
  // The page notices by itself (it asks every 2 s).
  await expect(page.getByRole("status")).toHaveText(`Telegram connected: Tanya (@tanya${user})`);

  // The same link a second time, from another Telegram user: refused, clearly.
  await telegramSays(request, user + 1, `/start ${token}`);
  expect(await lastReply(request, user + 1, 1)).toContain("already used");
  // A link that never existed (or expired).
  await telegramSays(request, user + 2, `/start ${"x".repeat(43)}`);
  expect(await lastReply(request, user + 2, 1)).toContain("expired");

  await page.getByRole("button", { name: "Unlink Telegram" }).click();
  await expect(page.getByRole("button", { name: "Link Telegram" })).toBeVisible();
  await telegramSays(request, user, "/docs");
  expect(await lastReply(request, user, 2)).toContain("not linked");
});

async function pressButton(request: APIRequestContext, user: number, label: RegExp) {
  let sent: { message_id: number; reply_markup?: { inline_keyboard: { text: string; callback_data?: string }[][] } }[] = [];
  await expect
    .poll(async () => {
      sent = await (await request.get(`${emulator}/control/chats/${user}/sent`)).json();
      return sent.some((m) => m.reply_markup);
    })
    .toBe(true);
  const question = sent.filter((m) => m.reply_markup).at(-1)!;
  const button = question.reply_markup!.inline_keyboard.flat().find((b) => label.test(b.text))!;
  const response = await request.post(`${emulator}/control/users/${user}/callbacks`, {
    data: { message_id: question.message_id, data: button.callback_data },
  });
  expect(response.ok()).toBe(true);
}

for (const answer of ["approve", "decline"] as const) {
  test(`push approval: the person ${answer}s in Telegram and the page follows`, async ({ page, request }) => {
    await signUp(page, uniqueEmail("link"));
    const user = 900000 + Math.floor(Math.random() * 90000);
    // The person has talked to the bot before.
    await telegramSays(request, user, "/start");
    await lastReply(request, user, 1);

    await page.goto("/settings");
    await waitForHydration(page);
    await page.getByLabel(/your username/).fill(`@tanya${user}`);
    await page.getByRole("button", { name: "Send to Telegram" }).click();
    await expect(page.getByTestId("push-status")).toContainText("answer it in Telegram");

    await pressButton(request, user, answer === "approve" ? /Approve/ : /Decline/);
    if (answer === "approve") {
      await expect(page.getByRole("status")).toHaveText(`Telegram connected: Tanya (@tanya${user})`);
      expect(await lastReply(request, user, 2)).toContain("Account linked");
    } else {
      await expect(page.getByTestId("push-status")).toHaveText("Declined in Telegram.");
      await expect(page.getByRole("button", { name: "Link Telegram" })).toBeVisible();
      expect(await lastReply(request, user, 2)).toContain("Declined");
    }
  });
}
