import { test, expect, waitForHydration, signUp, uniqueEmail } from "./fixtures";
import type { APIRequestContext, Page } from "@playwright/test";
import { textPdf } from "./pdf";

// Documents end to end on the running stack: a PDF sent to the bot through the emulator is
// uploaded, processed (the real pipeline), announced in the chat and shown on the web; a file
// uploaded on the web page is processed too and can be downloaded.
const emulator = process.env.EMULATOR_URL ?? "http://127.0.0.1:3181";

const invoice = (n: string) =>
  textPdf([
    "INVOICE",
    `Invoice No. ${n}`,
    "Date: 12.03.2026",
    "Consulting services 1,000.00 EUR",
    "VAT 19% 190.00 EUR",
    "Total 1,190.00 EUR",
    "Payment due: 2026-04-12",
    "IBAN: DE89 3704 0044 0532 0130 00",
  ]);

async function signUpAndLink(page: Page, request: APIRequestContext): Promise<number> {
  await signUp(page, uniqueEmail("docs"));
  await page.goto("/settings");
  await waitForHydration(page);
  await page.getByRole("button", { name: "Link Telegram" }).click();
  const link = await page.getByTestId("deep-link").textContent();
  const token = new URL(link ?? "").searchParams.get("start");
  const user = 700000 + Math.floor(Math.random() * 99999);
  await request.post(`${emulator}/control/users/${user}/messages`, {
    data: { text: `/start ${token}`, first_name: "Dana", language_code: "en" },
  });
  // The bot asks before it links: press Approve.
  let question: { message_id: number; reply_markup?: { inline_keyboard: { text: string; callback_data?: string }[][] } } | undefined;
  await expect
    .poll(async () => {
      const sent: (typeof question)[] = await (await request.get(`${emulator}/control/chats/${user}/sent`)).json();
      question = sent.find((m) => m?.reply_markup);
      return question !== undefined;
    })
    .toBe(true);
  const approve = question!.reply_markup!.inline_keyboard.flat().find((b) => /Approve/.test(b.text))!;
  await request.post(`${emulator}/control/users/${user}/callbacks`, {
    data: { message_id: question!.message_id, data: approve.callback_data },
  });
  await expect(page.getByRole("status")).toContainText("Telegram connected");
  return user;
}

async function botTexts(request: APIRequestContext, chat: number): Promise<string[]> {
  const history: { from: { is_bot: boolean }; text?: string }[] = await (
    await request.get(`${emulator}/control/chats/${chat}/history`)
  ).json();
  return history.filter((m) => m.from.is_bot).map((m) => m.text ?? "");
}

test("a PDF sent in Telegram is uploaded, processed, announced and listed on the web", async ({ page, request }) => {
  test.setTimeout(90_000);
  const user = await signUpAndLink(page, request);
  const pdf = invoice(`TG-${user}`);
  const sent = await request.post(`${emulator}/control/users/${user}/documents`, {
    data: { file_name: "invoice.pdf", mime_type: "application/pdf", content_base64: pdf.toString("base64"), first_name: "Dana", language_code: "en" },
  });
  expect(sent.ok()).toBe(true);
  await expect.poll(() => botTexts(request, user), { timeout: 30_000 }).toContain("✅ Uploaded invoice.pdf, processing…");
  await expect
    .poll(async () => (await botTexts(request, user)).find((t) => t.includes(" processed — ")) ?? "", { timeout: 60_000 })
    .toMatch(/^✅ invoice\.pdf processed — Invoice/);

  await page.goto("/documents");
  await waitForHydration(page);
  const row = page.locator("li.document", { hasText: "invoice.pdf" });
  await expect(row).toHaveAttribute("data-status", "processed");
  await expect(row.getByText("Invoice", { exact: true })).toBeVisible();
  await expect(row).toContainText("1,190.00 EUR");
  // The link downloads the original bytes.
  const [download] = await Promise.all([page.waitForEvent("download"), row.getByRole("link", { name: "invoice.pdf" }).click()]);
  const path = await download.path();
  const fs = await import("node:fs");
  expect(fs.readFileSync(path).equals(pdf)).toBe(true);
});

test("a file uploaded on the web is processed and can be deleted", async ({ page, request }) => {
  test.setTimeout(90_000);
  await signUpAndLink(page, request);
  await page.goto("/documents");
  await waitForHydration(page);
  await page.getByLabel(/Files/).setInputFiles({ name: "web-invoice.pdf", mimeType: "application/pdf", buffer: invoice(`WEB-${Date.now()}`) });
  await page.getByRole("button", { name: "Upload" }).click();
  await expect(page.getByRole("status").filter({ hasText: "Uploaded web-invoice.pdf" })).toBeVisible();
  const row = page.locator("li.document", { hasText: "web-invoice.pdf" });
  // The list refreshes by itself until processing ends.
  await expect(row).toHaveAttribute("data-status", "processed", { timeout: 60_000 });
  await expect(row.getByText("Invoice", { exact: true })).toBeVisible();

  // The same file again is recognised.
  await page.getByLabel(/Files/).setInputFiles({ name: "copy.pdf", mimeType: "application/pdf", buffer: await (await request.get(await row.getByRole("link").getAttribute("href") ?? "", { headers: { cookie: (await page.context().cookies()).map((c) => `${c.name}=${c.value}`).join("; ") } })).body() });
  await page.getByRole("button", { name: "Upload" }).click();
  await expect(page.getByRole("status").filter({ hasText: "web-invoice.pdf is already in your archive." })).toBeVisible();

  page.once("dialog", (dialog) => dialog.accept());
  await row.getByRole("button", { name: "Delete web-invoice.pdf" }).click();
  await expect(row).toHaveCount(0);
});

test("a question on the documents page is answered with a quote and a source that downloads", async ({ page, request }) => {
  test.setTimeout(90_000);
  await signUpAndLink(page, request);
  await page.goto("/documents");
  await waitForHydration(page);
  const number = `${10 + Math.floor(Math.random() * 89)} ${1000000 + Math.floor(Math.random() * 8999999)}`;
  const passport = Buffer.from(
    `REPUBLIC OF EXAMPLE\nPASSPORT\nSurname: DOE\nPassport No. ${number}\nDate of birth: 12.03.1985\n`,
  );
  await page.getByLabel(/Files/).setInputFiles({ name: "passport.txt", mimeType: "text/plain", buffer: passport });
  await page.getByRole("button", { name: "Upload" }).click();
  const row = page.locator("li.document", { hasText: "passport.txt" });
  await expect(row).toHaveAttribute("data-status", "processed", { timeout: 60_000 });

  await page.getByLabel("Question").fill("What is my passport number?");
  await page.getByRole("button", { name: "Ask" }).click();
  const answer = page.locator(".answer");
  await expect(answer.locator("q").first()).toHaveText(`Passport No. ${number}`);
  const source = answer.getByRole("link", { name: "[1] passport.txt · page 1" });
  await expect(source).toBeVisible();
  const [download] = await Promise.all([page.waitForEvent("download"), source.click()]);
  const fs = await import("node:fs");
  expect(fs.readFileSync(await download.path()).equals(passport)).toBe(true);

  // Nothing about it in the archive: said so, not invented.
  await page.getByLabel("Question").fill("How tall is Mount Everest?");
  await page.getByRole("button", { name: "Ask" }).click();
  await expect(answer).toHaveText("I could not find this in your documents.");
});
