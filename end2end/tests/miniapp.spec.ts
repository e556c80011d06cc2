import { test, expect, addVirtualAuthenticator } from "./fixtures";
import { CHROMIUM, CHROMIUM_ARGS } from "../playwright.config";
import type { APIRequestContext, Frame, Page } from "@playwright/test";
import crypto from "node:crypto";
import { textPdf } from "./pdf";

// The Mini App as Telegram opens it. Two simulated Telegram clients:
// - Telegram Web: a page at https://web.telegram.org (served by Playwright's router) holding
//   the Mini App in a cross-origin iframe, recording what the app posts to its parent and
//   posting Telegram's events back; third-party cookies are blocked.
// - a mobile client: the Mini App top-level with `window.TelegramWebviewProxy.postEvent`.
// initData is signed here with the stack's bot token, exactly as Telegram signs it.
const emulator = process.env.EMULATOR_URL ?? "http://127.0.0.1:3181";
const BOT_TOKEN = process.env.TELEGRAM_BOT_TOKEN ?? "123456:emulator-token";
const BASE = process.env.BASE_URL ?? "http://localhost:3100";
const TELEGRAM_WEB = "https://web.telegram.org/k/";

const DARK_THEME = {
  bg_color: "#17212b",
  text_color: "#f5f5f5",
  hint_color: "#708499",
  link_color: "#6ab3f3",
  button_color: "#5288c1",
  button_text_color: "#ffffff",
  secondary_bg_color: "#232e3c",
};

test.use({
  // Each run signs up five accounts: they count against their own address's sign-up limit
  // (the e2e stack trusts X-Forwarded-For), not the rest of the suite's.
  extraHTTPHeaders: { "x-forwarded-for": `198.51.100.${1 + Math.floor(Math.random() * 250)}` },
  launchOptions: {
    executablePath: CHROMIUM,
    args: [
      ...CHROMIUM_ARGS,
      // Third-party cookies off, as in browsers that block them (and often in Telegram Web).
      "--test-third-party-cookie-phaseout",
      // In production both Telegram Web and Dossier are public sites; here Dossier is on
      // localhost, which Chromium's Local Network Access checks would keep a public page
      // (web.telegram.org) from framing.
      "--disable-features=LocalNetworkAccessChecks,BlockInsecurePrivateNetworkRequests,PrivateNetworkAccessForNavigations,PrivateNetworkAccessRespectPreflightResults",
    ],
  },
});

type TgUser = { id: number; first_name: string; username: string; language_code: string };

function newUser(): TgUser {
  const id = 900000 + Math.floor(Math.random() * 99999);
  return { id, first_name: "Mia", username: `mia${id}`, language_code: "en" };
}

/** initData as Telegram builds it: sorted `key=value` lines under HMAC-SHA256. */
function signInitData(user: TgUser, opts: { authDate?: number; token?: string } = {}): string {
  const fields: Record<string, string> = {
    auth_date: String(opts.authDate ?? Math.floor(Date.now() / 1000)),
    query_id: `AAH${crypto.randomBytes(6).toString("hex")}`,
    user: JSON.stringify(user),
  };
  const check = Object.keys(fields)
    .sort()
    .map((k) => `${k}=${fields[k]}`)
    .join("\n");
  const secret = crypto.createHmac("sha256", "WebAppData").update(opts.token ?? BOT_TOKEN).digest();
  const hash = crypto.createHmac("sha256", secret).update(check).digest("hex");
  return Object.entries({ ...fields, hash })
    .map(([k, v]) => `${k}=${encodeURIComponent(v)}`)
    .join("&");
}

function launchUrl(initData: string, path = "/miniapp", theme: object = DARK_THEME): string {
  const fragment = [
    `tgWebAppData=${encodeURIComponent(initData)}`,
    "tgWebAppVersion=8.0",
    "tgWebAppPlatform=weba",
    `tgWebAppThemeParams=${encodeURIComponent(JSON.stringify(theme))}`,
  ].join("&");
  return `${BASE}${path}#${fragment}`;
}

type TgEvent = { eventType: string; eventData: any };

/** Telegram Web: the Mini App in a cross-origin iframe; returns its frame. */
async function openInTelegramWeb(page: Page, url: string): Promise<Frame> {
  await page.route(`${TELEGRAM_WEB}**`, (route) =>
    route.fulfill({
      contentType: "text/html",
      body: `<!doctype html><html><head><title>Telegram Web</title></head><body>
<iframe id="app" src="${url}" style="width:420px;height:760px;border:0"></iframe>
<script>
  window.__events = [];
  const frame = document.getElementById("app");
  window.addEventListener("message", (e) => {
    if (e.source !== frame.contentWindow) return;
    try { window.__events.push(JSON.parse(e.data)); } catch (_) {}
  });
  window.__send = (eventType, eventData) =>
    frame.contentWindow.postMessage(JSON.stringify({ eventType, eventData }), "*");
</script></body></html>`,
    }),
  );
  await page.goto(TELEGRAM_WEB);
  const handle = await page.waitForSelector("#app");
  const frame = await handle.contentFrame();
  if (!frame) throw new Error("no Mini App frame");
  await frame.waitForFunction(() => document.body.dataset.hydrated === "true");
  return frame;
}

async function webEvents(page: Page): Promise<TgEvent[]> {
  return page.evaluate(() => (window as any).__events as TgEvent[]);
}

/** A mobile client: `TelegramWebviewProxy.postEvent(type, json)` in the page itself. */
async function openAsMobile(page: Page, url: string, opts: { noWebAuthn?: boolean } = {}) {
  await page.addInitScript((noWebAuthn: boolean) => {
    (window as any).__events = [];
    (window as any).TelegramWebviewProxy = {
      postEvent(eventType: string, eventData: string) {
        (window as any).__events.push({ eventType, eventData: eventData ? JSON.parse(eventData) : null });
      },
    };
    if (noWebAuthn) {
      // An older WebView without WebAuthn.
      delete (window as any).PublicKeyCredential;
    }
  }, !!opts.noWebAuthn);
  await page.goto(url);
  await page.waitForFunction(() => document.body.dataset.hydrated === "true");
}

async function mobileEvents(page: Page): Promise<TgEvent[]> {
  return page.evaluate(() => (window as any).__events as TgEvent[]);
}

function named(events: TgEvent[], type: string): TgEvent[] {
  return events.filter((e) => e.eventType === type);
}

/** The unlinked path: create an account and link it, in the Mini App; signed in after. */
async function createAccount(app: Page | Frame, email: string, firstName = "Mia") {
  await expect(app.locator(".miniapp")).toHaveAttribute("data-phase", "not-linked");
  await expect(app.getByRole("heading", { name: `Welcome to Dossier, ${firstName}` })).toBeVisible();
  await app.getByRole("tab", { name: "Create an account" }).click();
  await app.getByLabel("Email").fill(email);
  await app.getByLabel("Password").fill("correct horse battery");
  await app.getByRole("button", { name: "Create account and link" }).click();
  await expect(app.locator(".miniapp")).toHaveAttribute("data-phase", "ready");
}

/** `createAccount`, landing on the home screen. */
async function createAndLink(app: Page | Frame, email: string) {
  await createAccount(app, email);
  await expect(app.getByTestId("signed-in-as")).toContainText(email);
}

function email(tag: string): string {
  return `${tag}-${Date.now()}-${Math.floor(Math.random() * 1e6)}@example.org`;
}

async function botTexts(request: APIRequestContext, chat: number): Promise<string[]> {
  const history: { from: { is_bot: boolean }; text?: string }[] = await (
    await request.get(`${emulator}/control/chats/${chat}/history`)
  ).json();
  return history.filter((m) => m.from.is_bot).map((m) => m.text ?? "");
}

async function sendPdf(request: APIRequestContext, user: TgUser, name: string, marker: string) {
  const pdf = textPdf(["INVOICE", `Invoice No. ${marker}`, "Total 1,190.00 EUR", "IBAN: DE89 3704 0044 0532 0130 00"]);
  const sent = await request.post(`${emulator}/control/users/${user.id}/documents`, {
    data: { file_name: name, mime_type: "application/pdf", content_base64: pdf.toString("base64"), first_name: user.first_name, language_code: "en" },
  });
  expect(sent.ok()).toBe(true);
}

test("in Telegram Web's iframe: theme, ready, sign-up and link, preferences honoured, back button", async ({ page, request }) => {
  test.setTimeout(120_000);
  const user = newUser();
  const headers: string[] = [];
  page.on("request", (r) => {
    if (r.url().startsWith(`${BASE}/api/`)) headers.push(r.headers()["x-dossier-session"] ?? "");
  });
  const app = await openInTelegramWeb(page, launchUrl(signInitData(user)));

  // Ready and expanded, through window.parent.postMessage.
  await expect.poll(async () => named(await webEvents(page), "web_app_ready").length).toBe(1);
  expect(named(await webEvents(page), "web_app_expand")).toHaveLength(1);
  // Telegram's theme as CSS variables, and the dark scheme.
  const shell = app.locator(".miniapp");
  await expect(shell).toHaveCSS("background-color", "rgb(23, 33, 43)");
  await expect(shell).toHaveCSS("color", "rgb(245, 245, 245)");
  expect(await app.evaluate(() => document.documentElement.dataset.colorScheme)).toBe("dark");

  const address = email("mini");
  await createAndLink(app, address);
  await expect(app.getByTestId("linked-telegram")).toContainText(`@${user.username}`);
  // Signed in with no cookie at all: every API call after sign-in carried the header.
  const cookies = await page.context().cookies(BASE);
  expect(cookies.filter((c) => c.name === "dossier_session")).toHaveLength(0);
  expect(headers.filter((h) => h !== "").length).toBeGreaterThan(0);

  // Notifications: switch "processed" off; the back button appears off the home screen.
  await app.getByRole("link", { name: "Notifications" }).click();
  await expect
    .poll(async () => named(await webEvents(page), "web_app_setup_back_button").at(-1)?.eventData)
    .toEqual({ is_visible: true });
  const processed = app.getByLabel("a document is processed");
  await expect(processed).toBeChecked();
  await processed.uncheck();
  await expect(app.getByRole("status")).toHaveText("Saved.");
  expect(named(await webEvents(page), "web_app_trigger_haptic_feedback").at(-1)?.eventData).toEqual({
    type: "impact",
    impact_style: "light",
  });

  // Telegram's back button (an event from the parent) goes home.
  await page.evaluate(() => (window as any).__send("back_button_pressed", null));
  await expect(app.getByTestId("signed-in-as")).toBeVisible();
  await expect
    .poll(async () => named(await webEvents(page), "web_app_setup_back_button").at(-1)?.eventData)
    .toEqual({ is_visible: false });

  // A document while "processed" is off: uploaded, processed, and not announced.
  await sendPdf(request, user, "quiet.pdf", `Q-${user.id}`);
  await expect.poll(() => botTexts(request, user.id), { timeout: 30_000 }).toContain("✅ Uploaded quiet.pdf, processing…");
  await app.getByRole("link", { name: "Documents" }).click();
  const quiet = app.locator("li.document", { hasText: "quiet.pdf" });
  await expect(quiet).toHaveAttribute("data-status", "processed", { timeout: 60_000 });
  // Switched back on, the next one is announced; the quiet one never was.
  await page.evaluate(() => (window as any).__send("back_button_pressed", null));
  await app.getByRole("link", { name: "Notifications" }).click();
  await app.getByLabel("a document is processed").check();
  await expect(app.getByRole("status")).toHaveText("Saved.");
  await sendPdf(request, user, "loud.pdf", `L-${user.id}`);
  await expect
    .poll(async () => (await botTexts(request, user.id)).some((t) => t.startsWith("✅ loud.pdf processed")), { timeout: 60_000 })
    .toBe(true);
  const texts = await botTexts(request, user.id);
  expect(texts.filter((t) => t.includes("quiet.pdf processed"))).toEqual([]);
});

test("in a mobile client: a passkey made in the WebView, haptic success, Done closes", async ({ page }) => {
  const { cdp, authenticatorId } = await addVirtualAuthenticator(page);
  const user = newUser();
  await openAsMobile(page, launchUrl(signInitData(user)));
  expect(named(await mobileEvents(page), "web_app_ready")).toHaveLength(1);
  await createAndLink(page, email("pk"));

  await page.getByRole("link", { name: "Passkeys" }).click();
  await expect(page.getByText("You have no passkeys yet.")).toBeVisible();
  await page.getByLabel("Name").fill("Phone");
  await page.getByRole("button", { name: "Add a passkey" }).click();
  await expect(page.locator(".done")).toContainText("Passkey “Phone” added.");
  await expect(page.getByTestId("passkey")).toContainText("Phone");
  const { credentials } = await cdp.send("WebAuthn.getCredentials", { authenticatorId });
  expect(credentials).toHaveLength(1);
  const events = await mobileEvents(page);
  expect(named(events, "web_app_trigger_haptic_feedback").map((e) => e.eventData)).toContainEqual({
    type: "notification",
    notification_type: "success",
  });
  expect(named(events, "web_app_setup_main_button").at(-1)?.eventData).toMatchObject({
    is_visible: true,
    text: "Done",
    color: "#5288c1",
  });

  // Rename and delete work in the Mini App too.
  await page.getByRole("button", { name: "Rename" }).click();
  await page.getByLabel("New name").fill("Work phone");
  await page.getByRole("button", { name: "Save" }).click();
  await expect(page.getByTestId("passkey")).toContainText("Work phone");

  // Telegram's main button ("Done") closes the Mini App.
  await page.evaluate(() => (window as any).Telegram.WebView.receiveEvent("main_button_pressed", null));
  await expect.poll(async () => named(await mobileEvents(page), "web_app_close").length).toBe(1);

  await page.getByRole("button", { name: "Delete", exact: true }).click();
  await page.getByRole("button", { name: "Yes, delete" }).click();
  await expect(page.getByText("You have no passkeys yet.")).toBeVisible();
});

test("without WebAuthn in the WebView, the system browser adds the passkey and the Mini App sees it", async ({ page, context }) => {
  const user = newUser();
  await openAsMobile(page, launchUrl(signInitData(user)), { noWebAuthn: true });
  await createAndLink(page, email("fallback"));
  await page.getByRole("link", { name: "Passkeys" }).click();
  await page.getByLabel("Name").fill("Telegram");
  await page.getByRole("button", { name: "Add a passkey" }).click();
  await expect(page.locator(".in-browser")).toContainText("your browser was opened");
  const opened = named(await mobileEvents(page), "web_app_open_link");
  expect(opened).toHaveLength(1);
  const url: string = opened[0].eventData.url;
  expect(url).toMatch(new RegExp(`^${BASE}/passkeys/setup#[A-Za-z0-9_-]{43}$`));

  // The "system browser": a separate page, no session, its own authenticator.
  const browser = await context.newPage();
  await addVirtualAuthenticator(browser);
  await browser.goto(url);
  await browser.waitForFunction(() => document.body.dataset.hydrated === "true");
  await browser.getByLabel("Name").fill("Laptop");
  await browser.getByRole("button", { name: "Add a passkey" }).click();
  await expect(browser.getByRole("status")).toContainText("Passkey “Laptop” added.");
  // The link worked once.
  const again = await context.newPage();
  await again.goto(url);
  await again.waitForFunction(() => document.body.dataset.hydrated === "true");
  await again.getByRole("button", { name: "Add a passkey" }).click();
  await expect(again.getByRole("alert")).toContainText("expired or was already used");
  await again.close();
  await browser.close();

  // Back in the Mini App: the result shows up by itself.
  await expect(page.locator(".done")).toContainText("Passkey “Laptop” added.");
  await expect(page.getByTestId("passkey")).toContainText("Laptop");
  expect(named(await mobileEvents(page), "web_app_trigger_haptic_feedback").map((e) => e.eventData)).toContainEqual({
    type: "notification",
    notification_type: "success",
  });
});

test("a startapp link opens its screen once signed in; an unknown one stays home", async ({ page }) => {
  const user = newUser();
  await openAsMobile(page, `${launchUrl(signInitData(user))}&tgWebAppStartParam=passkeys`);
  await createAccount(page, email("start"));
  await expect.poll(() => new URL(page.url()).pathname).toBe("/miniapp/passkeys");
  await expect(page.getByText("You have no passkeys yet.")).toBeVisible();
  await expect
    .poll(async () => named(await mobileEvents(page), "web_app_setup_back_button").at(-1)?.eventData)
    .toEqual({ is_visible: true });
  // Back home, it does not jump to the start screen again.
  await page.evaluate(() => (window as any).Telegram.WebView.receiveEvent("back_button_pressed", null));
  await expect(page.getByTestId("signed-in-as")).toBeVisible();

  const other = await page.context().newPage();
  await openAsMobile(other, `${launchUrl(signInitData(user))}&tgWebAppStartParam=${encodeURIComponent("//evil.example")}`);
  await expect(other.locator(".miniapp")).toHaveAttribute("data-phase", "ready");
  await expect(other.getByTestId("signed-in-as")).toBeVisible();
  expect(new URL(other.url()).pathname).toBe("/miniapp");
  await other.close();
});

test("stale, forged or missing launch data gets a screen that says what to do", async ({ page }) => {
  const user = newUser();
  const stale = signInitData(user, { authDate: Math.floor(Date.now() / 1000) - 3600 });
  await openAsMobile(page, launchUrl(stale));
  const refused = page.locator(".refused");
  await expect(refused).toHaveAttribute("data-code", "init_data_expired");
  await expect(refused.getByRole("heading")).toHaveText("This page has expired");
  await refused.getByRole("button", { name: "Close" }).click();
  expect(named(await mobileEvents(page), "web_app_close")).toHaveLength(1);

  const forged = signInitData(user, { token: "123456:not-the-bot-token" });
  const tab = await page.context().newPage();
  await openAsMobile(tab, launchUrl(forged));
  await expect(tab.locator(".refused")).toHaveAttribute("data-code", "unauthenticated");
  await expect(tab.locator(".refused").getByRole("heading")).toHaveText("Telegram could not be verified");
  await tab.close();

  await page.goto(`${BASE}/miniapp`);
  await page.evaluate(() => sessionStorage.clear());
  await page.reload();
  await page.waitForFunction(() => document.body.dataset.hydrated === "true");
  await expect(page.locator(".miniapp")).toHaveAttribute("data-phase", "outside-telegram");
  await expect(page.getByRole("heading", { name: "Open Dossier in Telegram" })).toBeVisible();
});

test("export my data, then delete my account, both confirmed", async ({ page, request }) => {
  test.setTimeout(90_000);
  const user = newUser();
  await openAsMobile(page, launchUrl(signInitData(user)));
  const address = email("rights");
  await createAndLink(page, address);
  await sendPdf(request, user, "keep.pdf", `K-${user.id}`);
  await page.getByRole("link", { name: "Documents" }).click();
  await expect(page.locator("li.document", { hasText: "keep.pdf" })).toHaveAttribute("data-status", "processed", { timeout: 60_000 });
  await page.getByRole("link", { name: "‹ Dossier" }).click();

  await page.getByRole("link", { name: "Your data" }).click();
  await page.getByRole("button", { name: "Export" }).click();
  await expect.poll(async () => named(await mobileEvents(page), "web_app_open_link").length).toBe(1);
  const url: string = named(await mobileEvents(page), "web_app_open_link")[0].eventData.url;
  expect(url).toMatch(new RegExp(`^${BASE}/account/export/`));
  const zip = await request.get(url);
  expect(zip.status()).toBe(200);
  expect(zip.headers()["content-type"]).toBe("application/zip");
  const bytes = await zip.body();
  expect(bytes.subarray(0, 2).toString("latin1")).toBe("PK");
  expect(bytes.includes(Buffer.from("metadata.json"))).toBe(true);
  expect(bytes.includes(Buffer.from("keep.pdf"))).toBe(true);
  expect((await request.get(url)).status()).toBe(410);

  await page.getByRole("button", { name: "Delete my account…" }).click();
  await page.getByLabel("Type your email to confirm").fill("someone-else@example.org");
  await page.getByRole("button", { name: "Delete everything" }).click();
  await expect(page.getByRole("alert")).toContainText("type your account's email");
  await page.getByLabel("Type your email to confirm").fill(address);
  await page.getByRole("button", { name: "Delete everything" }).click();
  await expect(page.locator(".miniapp")).toHaveAttribute("data-phase", "deleted");
  await page.getByRole("button", { name: "Close" }).click();
  expect(named(await mobileEvents(page), "web_app_close")).toHaveLength(1);

  // Opened again: the Telegram user is no longer linked to anything.
  const again = await page.context().newPage();
  await openAsMobile(again, launchUrl(signInitData(user)));
  await expect(again.locator(".miniapp")).toHaveAttribute("data-phase", "not-linked");
  await again.close();
});

test("only Telegram's web clients may frame the Mini App, and no site may frame the website", async ({ context, request }) => {
  // A page of its own: the browser reports each refused frame on this page's console.
  const evil = await context.newPage();
  const refused: string[] = [];
  evil.on("console", (msg) => {
    if (/violates the following Content Security Policy directive: "frame-ancestors/.test(msg.text())) refused.push(msg.text());
  });
  await evil.route("https://evil.example/**", (route) =>
    route.fulfill({
      contentType: "text/html",
      body: `<!doctype html><iframe id="mini" src="${BASE}/miniapp"></iframe><iframe id="site" src="${BASE}/documents"></iframe>`,
    }),
  );
  await evil.goto("https://evil.example/");
  // Each frame refused for its own policy (the browser may report a refusal more than once).
  const kinds = () => ({
    miniapp: refused.some((line) => line.includes("frame-ancestors https://web.telegram.org")),
    website: refused.some((line) => line.includes("frame-ancestors 'none'")),
  });
  await expect.poll(kinds, { timeout: 20_000 }).toEqual({ miniapp: true, website: true });
  // Both frames show the browser's error page instead of Dossier.
  await expect
    .poll(() => evil.frames().filter((frame) => frame.url().startsWith("chrome-error://")).length, { timeout: 20_000 })
    .toBe(2);
  await evil.close();

  // What the policies say, and the nonce on the inline hydration script.
  const mini = await request.get(`${BASE}/miniapp`);
  const policy = mini.headers()["content-security-policy"];
  expect(policy).toContain("frame-ancestors https://web.telegram.org https://webk.telegram.org https://webz.telegram.org");
  expect(mini.headers()["x-frame-options"]).toBeUndefined();
  const nonce = /'nonce-([^']+)'/.exec(policy)?.[1];
  expect(nonce).toBeTruthy();
  expect(await mini.text()).toContain(`nonce="${nonce}"`);
  const site = await request.get(`${BASE}/documents`);
  expect(site.headers()["content-security-policy"]).toContain("frame-ancestors 'none'");
  expect(site.headers()["x-frame-options"]).toBe("DENY");
  expect(site.headers()["x-content-type-options"]).toBe("nosniff");
  const api = await request.post(`${BASE}/api/auth/me`, { headers: { origin: BASE } });
  expect(api.headers()["content-security-policy"]).toBe("default-src 'none'; frame-ancestors 'none'; sandbox");
});

const LIGHT_THEME = {
  bg_color: "#ffffff",
  text_color: "#000000",
  hint_color: "#707579",
  link_color: "#3390ec",
  button_color: "#3390ec",
  button_text_color: "#ffffff",
  secondary_bg_color: "#f4f4f5",
};

/** Elements whose box leaves the viewport sideways, and whether the page scrolls sideways. */
async function overflow(page: Page): Promise<{ scrolls: boolean; outside: string[] }> {
  return page.evaluate(() => {
    const width = window.innerWidth;
    const outside: string[] = [];
    for (const element of Array.from(document.querySelectorAll(".miniapp *"))) {
      const box = element.getBoundingClientRect();
      if (box.width === 0 && box.height === 0) continue;
      if (box.right > width + 0.5 || box.left < -0.5) {
        const name = `${element.tagName.toLowerCase()}${element.className ? "." + String(element.className).split(" ").join(".") : ""}`;
        outside.push(`${name} [${Math.round(box.left)}, ${Math.round(box.right)}] of ${width}`);
      }
    }
    return { scrolls: document.documentElement.scrollWidth > width, outside };
  });
}

test("every Mini App screen fits 360 and 400 px, light and dark, with long names", async ({ page, request }) => {
  test.setTimeout(120_000);
  await addVirtualAuthenticator(page);
  const user = {
    ...newUser(),
    first_name: "Maximiliana-Konstantinopolskaya",
  };
  const longEmail = `maximiliana.konstantinopolskaya-${user.id}@accounts.household-archive.example.org`;
  await page.setViewportSize({ width: 360, height: 740 });
  await openAsMobile(page, launchUrl(signInitData(user), "/miniapp", LIGHT_THEME));
  await createAccount(page, longEmail, user.first_name);
  await expect(page.getByTestId("signed-in-as")).toContainText(longEmail);
  // A long passkey name, and a document with a long file name.
  await page.getByRole("link", { name: "Passkeys" }).click();
  await page.getByLabel("Name").fill("Family tablet in the kitchen by the window, second drawer");
  await page.getByRole("button", { name: "Add a passkey" }).click();
  await expect(page.getByTestId("passkey")).toContainText("Family tablet");
  await sendPdf(request, user, "Stadtwerke-Jahresabrechnung-Strom-und-Gas-2026-Kundennummer-0012345678.pdf", `L${user.id}`);

  const screens: [string, RegExp][] = [
    ["/miniapp", /Signed in as/],
    ["/miniapp/documents", /Stadtwerke/],
    ["/miniapp/preferences", /./],
    ["/miniapp/passkeys", /Family tablet/],
    ["/miniapp/language", /./],
    ["/miniapp/data", /./],
  ];
  for (const [theme, colors] of [["light", LIGHT_THEME], ["dark", DARK_THEME]] as const) {
    for (const width of [360, 400]) {
      await page.setViewportSize({ width, height: 740 });
      for (const [path, shows] of screens) {
        await openAsMobile(page, launchUrl(signInitData(user), path, colors));
        await expect(page.locator(".miniapp")).toHaveAttribute("data-phase", "ready");
        await expect(page.locator(".miniapp .screen")).toContainText(shows, { timeout: 30_000 });
        const found = await overflow(page);
        expect(found, `${path} at ${width} px, ${theme}`).toEqual({ scrolls: false, outside: [] });
      }
      // The Passkeys screen is a screen, not the web page's panel: no rule or gap above it.
      await openAsMobile(page, launchUrl(signInitData(user), "/miniapp/passkeys", colors));
      const screen = page.locator("section.screen.passkeys");
      await expect(screen).toBeVisible();
      const style = await screen.evaluate((el) => {
        const s = getComputedStyle(el);
        return { border: s.borderTopWidth, padding: s.paddingTop, margin: s.marginTop };
      });
      expect(style, `passkeys screen at ${width} px, ${theme}`).toEqual({ border: "0px", padding: "0px", margin: "0px" });
    }
  }
});
