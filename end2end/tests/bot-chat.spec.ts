import { test, expect } from "./fixtures";

// `make run` without a token: the emulator's chat page talks to the real bot, which answers
// through the real server.
const emulator = process.env.EMULATOR_URL ?? "http://127.0.0.1:3181";

test("a person chats with the bot in the emulator's page", async ({ page }) => {
  await page.goto(emulator + "/");
  await page.getByLabel("User id").fill(String(700000 + Math.floor(Math.random() * 100000)));
  await page.getByLabel("First name").fill("Ann");
  const log = page.getByRole("log", { name: "Conversation" });

  await page.getByPlaceholder("Message (Enter sends, Shift+Enter newline)").fill("/start");
  await page.getByRole("button", { name: "Send" }).click();
  await expect(log.getByText("Hello, Ann! I keep your documents")).toBeVisible();

  await page.getByPlaceholder("Message (Enter sends, Shift+Enter newline)").fill("/settings");
  await page.keyboard.press("Enter");
  await expect(log.getByRole("button", { name: /Open settings/ })).toBeVisible();

  // Russian from the chosen language.
  await page.getByLabel("Language").selectOption("ru");
  await page.getByPlaceholder("Message (Enter sends, Shift+Enter newline)").fill("/help");
  await page.keyboard.press("Enter");
  await expect(log.getByText(/хранит ваши бумаги/)).toBeVisible();
});
