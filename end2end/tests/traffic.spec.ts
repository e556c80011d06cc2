import { test, expect, waitForHydration, signUp, uniqueEmail } from "./fixtures";
import { connect, StringCodec } from "nats";

// The administrators' live NATS traffic page. The stack runs with
// DOSSIER_ADMIN_EMAILS=ops@e2e.test (scripts/e2e.sh); this test publishes to the stack's NATS
// itself and watches the page's counts move without a reload (server-sent events).
const NATS_URL = process.env.NATS_URL ?? "nats://127.0.0.1:14222";
const ADMIN = "ops@e2e.test";

test.use({
  // Its own address for the sign-up limit (the e2e stack trusts X-Forwarded-For).
  extraHTTPHeaders: { "x-forwarded-for": `203.0.113.${1 + Math.floor(Math.random() * 250)}` },
});

test("an administrator watches subject rates and consumer lag move live", async ({ page }) => {
  await signUp(page, ADMIN);
  await expect(page.getByRole("link", { name: "Traffic" })).toBeVisible();
  await page.getByRole("link", { name: "Traffic" }).click();
  await expect(page).toHaveURL(/\/admin\/traffic$/);
  await waitForHydration(page);
  await expect(page.getByTestId("traffic-live")).toContainText("Live");

  const subject = `e2e.playwright.probe${Math.floor(Math.random() * 1e6)}x`;
  const nc = await connect({ servers: NATS_URL });
  const codec = StringCodec();
  try {
    for (let i = 0; i < 25; i++) nc.publish(subject, codec.encode(`message ${i}`));
    await nc.flush();
    const row = page.locator(`tr[data-subject="${subject}"]`);
    await expect(row.locator('[data-cell="total"]')).toHaveText("25");
    await expect(row.locator('[data-cell="minute"]')).toHaveText("25");
    await expect(row.locator('[data-cell="rate"]')).not.toHaveText("0.0");
    await expect(row).toContainText("e2e");

    // More messages: the same row counts on, with no reload.
    for (let i = 0; i < 15; i++) nc.publish(subject, codec.encode(`more ${i}`));
    await nc.flush();
    await expect(row.locator('[data-cell="total"]')).toHaveText("40");

    // Ids in subjects fold into one row instead of one row each.
    for (let i = 0; i < 3; i++) nc.publish(`e2e.rag.answers.${crypto.randomUUID()}`, codec.encode("part"));
    await nc.flush();
    await expect(page.locator('tr[data-subject="e2e.rag.answers.*"]')).toBeVisible();
  } finally {
    await nc.close();
  }
  // The pipeline's stage consumers and the bot's notification consumer, with their lag.
  await expect(page.locator('tr[data-consumer^="E2E_DOCUMENTS/"]').first()).toBeVisible();
  await expect(page.locator('tr[data-consumer^="E2E_NOTIFICATIONS/"]').first()).toBeVisible();
});

test("someone who is not an administrator is told so", async ({ page }) => {
  await signUp(page, uniqueEmail("member"));
  await expect(page.getByRole("link", { name: "Traffic" })).toHaveCount(0);
  await page.goto("/admin/traffic");
  await waitForHydration(page);
  await expect(page.getByRole("alert")).toHaveText("This page is for administrators.");
  const events = await page.request.get("/admin/traffic/events");
  expect(events.status()).toBe(403);
});
