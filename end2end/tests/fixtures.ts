import { test as base, expect, Page } from "@playwright/test";

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
