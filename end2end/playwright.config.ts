import { defineConfig } from "@playwright/test";

// The stack is started by scripts/e2e.sh (server, Bot API emulator, bot); these tests only
// drive the browser. Debian's Chromium is used: Playwright never downloads a browser here.
const baseURL = process.env.BASE_URL ?? "http://localhost:3100";

// Debian's Chromium and the flags every suite runs it with (suites that need more append theirs).
export const CHROMIUM = "/usr/bin/chromium";
export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

export default defineConfig({
  testDir: "./tests",
  timeout: 30_000,
  expect: { timeout: 10_000 },
  fullyParallel: false,
  workers: 1,
  forbidOnly: !!process.env.CI,
  retries: 0,
  reporter: [["list"]],
  use: {
    baseURL,
    trace: "retain-on-failure",
    launchOptions: { executablePath: CHROMIUM, args: CHROMIUM_ARGS },
  },
  projects: [
    { name: "js", use: { javaScriptEnabled: true }, testIgnore: /.*\.nojs\.spec\.ts/ },
    { name: "no-js", use: { javaScriptEnabled: false }, testMatch: /.*\.nojs\.spec\.ts/ },
  ],
});
