import { test, expect, waitForHydration, signUp, uniqueEmail } from "./fixtures";
import type { APIRequestContext } from "@playwright/test";

// Prometheus metrics of the running stack: the server's /metrics (on its operator port, never
// the public one) and the bot's own /metrics and /healthz move as people use the system. (scripts/e2e.sh checks every family once more after
// the whole suite.)
const BASE = process.env.BASE_URL ?? "http://localhost:3100";
const BOT_METRICS = process.env.BOT_METRICS_URL ?? "http://127.0.0.1:3102";
const SERVER_METRICS = process.env.SERVER_METRICS_URL ?? "http://127.0.0.1:3101";
const emulator = process.env.EMULATOR_URL ?? "http://127.0.0.1:3181";

test.use({
  extraHTTPHeaders: { "x-forwarded-for": `192.0.2.${1 + Math.floor(Math.random() * 250)}` },
});

type Labels = Record<string, string>;

// The sum of the samples of `family` whose labels include `labels`.
function sample(text: string, family: string, labels: Labels = {}): number {
  return text
    .split("\n")
    .filter((line) => line.startsWith(`${family}{`) || line.startsWith(`${family} `))
    .filter((line) => Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`)))
    .map((line) => Number(line.slice(line.lastIndexOf(" ") + 1)))
    .reduce((a, b) => a + b, 0);
}

async function scrape(request: APIRequestContext, url: string): Promise<string> {
  const response = await request.get(`${url}/metrics`);
  expect(response.status()).toBe(200);
  expect(response.headers()["content-type"]).toContain("text/plain");
  return response.text();
}

test("server and bot metrics move as the system is used", async ({ page, request }) => {
  test.setTimeout(90_000);
  const health = await request.get(`${BOT_METRICS}/healthz`);
  expect(await health.text()).toBe("ok");
  // The public port does not serve the server's metrics.
  expect((await request.get(`${BASE}/metrics`)).status()).toBe(404);
  const server0 = await scrape(request, SERVER_METRICS);
  const bot0 = await scrape(request, BOT_METRICS);

  // The web: a sign-up (a server function) and an upload that goes through the pipeline.
  await signUp(page, uniqueEmail("ops"));
  await page.goto("/documents");
  await waitForHydration(page);
  const text = `Metrics check ${Date.now()}\nA short note about the boiler service on 3 March.\n`;
  await page.getByLabel(/Files/).setInputFiles({ name: "note.txt", mimeType: "text/plain", buffer: Buffer.from(text) });
  await page.getByRole("button", { name: "Upload" }).click();
  const row = page.locator("li.document", { hasText: "note.txt" });
  await expect(row).toHaveAttribute("data-status", "processed", { timeout: 60_000 });

  // Telegram: a command to the bot, answered through the emulator.
  const user = 800000 + Math.floor(Math.random() * 90000);
  const said = await request.post(`${emulator}/control/users/${user}/messages`, { data: { text: "/help", first_name: "Olga", language_code: "en" } });
  expect(said.ok()).toBe(true);
  await expect
    .poll(async () => ((await (await request.get(`${emulator}/control/chats/${user}/sent`)).json()) as unknown[]).length)
    .toBeGreaterThan(0);

  const server1 = await scrape(request, SERVER_METRICS);
  expect(sample(server1, "dossier_server_fn_calls_total", { fn: "auth/sign-up", result: "ok" })).toBeGreaterThan(
    sample(server0, "dossier_server_fn_calls_total", { fn: "auth/sign-up", result: "ok" }),
  );
  expect(sample(server1, "http_requests_total", { route: "/documents" })).toBeGreaterThan(sample(server0, "http_requests_total", { route: "/documents" }));
  for (const stage of ["text", "classify", "extract", "embed"]) {
    expect(sample(server1, "dossier_pipeline_stage_seconds_count", { stage })).toBeGreaterThan(
      sample(server0, "dossier_pipeline_stage_seconds_count", { stage }),
    );
  }
  expect(sample(server1, "dossier_embedding_texts_total")).toBeGreaterThan(sample(server0, "dossier_embedding_texts_total"));
  expect(server1).toContain("dossier_jetstream_consumer_pending{");

  await expect
    .poll(async () => sample(await scrape(request, BOT_METRICS), "dossier_bot_updates_total", { kind: "command" }))
    .toBeGreaterThan(sample(bot0, "dossier_bot_updates_total", { kind: "command" }));
  const bot1 = await scrape(request, BOT_METRICS);
  expect(sample(bot1, "dossier_telegram_requests_total", { method: "SendMessage", result: "ok" })).toBeGreaterThan(
    sample(bot0, "dossier_telegram_requests_total", { method: "SendMessage", result: "ok" }),
  );
  expect(sample(bot1, "dossier_bot_update_duration_seconds_count", { kind: "command" })).toBeGreaterThan(
    sample(bot0, "dossier_bot_update_duration_seconds_count", { kind: "command" }),
  );
  // Bounded labels: no chat id anywhere.
  expect(bot1).not.toContain(String(user));
});
