import { test, expect, waitForHydration, addVirtualAuthenticator, signUp, uniqueEmail } from "./fixtures";

test.describe("passkeys", () => {
  test("register a passkey, sign out, and sign in with it alone", async ({ page }) => {
    const { cdp, authenticatorId } = await addVirtualAuthenticator(page);
    const email = uniqueEmail("pk");
    await signUp(page, email);
    await waitForHydration(page);
    await expect(page.getByText("You have no passkeys yet.")).toBeVisible();

    await page.getByLabel("Name").fill("Test laptop");
    await page.getByRole("button", { name: "Add a passkey" }).click();
    await expect(page.getByRole("status")).toHaveText("Passkey “Test laptop” added.");
    const row = page.getByTestId("passkey");
    await expect(row).toHaveCount(1);
    await expect(row).toContainText("Test laptop");
    await expect(row).toContainText("never used");

    // The authenticator now holds one discoverable credential for this site.
    const { credentials } = await cdp.send("WebAuthn.getCredentials", { authenticatorId });
    expect(credentials).toHaveLength(1);
    expect(credentials[0].isResidentCredential).toBe(true);
    expect(credentials[0].rpId).toBe("localhost");

    await page.getByRole("button", { name: "Sign out" }).click();
    await expect(page).toHaveURL(/\/$/);

    // No email, no password: the passkey identifies and verifies the person.
    await page.goto("/signin");
    await waitForHydration(page);
    await page.getByRole("button", { name: "Sign in with a passkey" }).click();
    await expect(page).toHaveURL(/\/account$/);
    await expect(page.getByText(`Signed in as ${email}`)).toBeVisible();
    await expect(page.getByTestId("passkey")).toContainText("last used");

    // Rename, then delete it.
    await page.getByRole("button", { name: "Rename" }).click();
    await page.getByLabel("New name").fill("Work laptop");
    await page.getByRole("button", { name: "Save" }).click();
    await expect(page.getByTestId("passkey")).toContainText("Work laptop");
    await page.getByRole("button", { name: "Delete", exact: true }).click();
    await page.getByRole("button", { name: "Yes, delete" }).click();
    await expect(page.getByText("You have no passkeys yet.")).toBeVisible();

    // The authenticator still holds the credential, but the server no longer knows it.
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.goto("/signin");
    await waitForHydration(page);
    await page.getByRole("button", { name: "Sign in with a passkey" }).click();
    await expect(page.getByRole("alert")).toContainText("not registered here");
  });
});
