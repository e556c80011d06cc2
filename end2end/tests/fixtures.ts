import { test as base, expect, CDPSession, Page } from "@playwright/test";

// Every page load is watched: a console error or an uncaught exception fails the test,
// so a broken hydration cannot pass silently. The one exception is the browser's own
// "Failed to load resource" line for an expected 4xx answer: an API error the page shows to
// the person (wrong password → 400) or a document that is meant to be a 404.
export const test = base.extend<{ page: Page }>({
  page: async ({ page }, use) => {
    const problems: string[] = [];
    const expected4xx = new Set<string>();
    page.on("response", (response) => {
      const status = response.status();
      const kind = response.request().resourceType();
      const isApi = new URL(response.url()).pathname.startsWith("/api/");
      if (status >= 400 && status < 500 && (isApi || kind === "document")) {
        expected4xx.add(response.url());
      }
    });
    page.on("console", (msg) => {
      if (msg.type() !== "error") return;
      const text = msg.text();
      if (/^Failed to load resource: the server responded with a status of 4\d\d/.test(text) && expected4xx.has(msg.location().url)) {
        return;
      }
      problems.push(`console error: ${text} (${msg.location().url})`);
    });
    page.on("pageerror", (err) => problems.push(`page error: ${err.message}`));
    await use(page);
    expect(problems, problems.join("\n")).toEqual([]);
  },
});

export { expect };

// Resolves once the wasm bundle has hydrated the page (the hydrate() entry has run).
export async function waitForHydration(page: Page) {
  await page.waitForFunction(() => document.body.dataset.hydrated === "true");
}

// Chromium's virtual authenticator (CDP WebAuthn domain): a platform authenticator with
// resident keys and user verification that answers prompts on its own.
export async function addVirtualAuthenticator(page: Page): Promise<{ cdp: CDPSession; authenticatorId: string }> {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("WebAuthn.enable");
  const { authenticatorId } = await cdp.send("WebAuthn.addVirtualAuthenticator", {
    options: {
      protocol: "ctap2",
      transport: "internal",
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  });
  return { cdp, authenticatorId };
}

// A fresh address for each account a test makes.
export function uniqueEmail(prefix: string): string {
  return `${prefix}-${Date.now()}-${Math.floor(Math.random() * 1e6)}@example.org`;
}

// Creates an account on the web sign-up page and waits for the account page.
export async function signUp(page: Page, email: string = uniqueEmail("user")): Promise<string> {
  await page.goto("/signup");
  await waitForHydration(page);
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill("correct horse battery");
  await page.getByRole("button", { name: "Create account" }).click();
  await expect(page).toHaveURL(/\/account$/);
  return email;
}
