// Loads the viewer from a running ecg-serve in headless Chromium, uploads
// record 100 (.hea + .dat + .atr) through the page's file picker, and checks
// what the page drew. Usage: node viewer.mjs <base-url> <fixture-dir> [screenshot.png]
// Exits non-zero with a message on the first failed check.
import { chromium } from "playwright-core";
import path from "node:path";

const [base, fixtures, screenshot] = process.argv.slice(2);
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const fail = (msg) => { console.error("FAIL: " + msg); process.exitCode = 1; throw new Error(msg); };
const check = (ok, msg) => { if (!ok) fail(msg); console.log("ok: " + msg); };

const browser = await chromium.launch({
  executablePath,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 860 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  const external = [];
  page.on("request", (r) => { if (!r.url().startsWith(base)) external.push(r.url()); });
  await page.goto(base + "/");
  check((await page.title()) === "ecg-serve viewer", "the page loads from the server");
  await page.setInputFiles("#files", ["100.hea", "100.dat", "100.atr"].map((f) => path.join(fixtures, f)));
  await page.click("#analyse");
  await page.waitForFunction(() => ["ready", "error"].includes(document.body.dataset.state), null, { timeout: 120000 });
  const state = await page.evaluate(() => document.body.dataset.state);
  check(state === "ready", "record 100 analysed (state " + state + ": " + (await page.textContent("#status")) + ")");
  const beats = Number(await page.evaluate(() => document.body.dataset.beats));
  check(beats >= 2263 && beats <= 2283, "about 2273 beats in the answer (" + beats + ")");
  const summary = await page.textContent("#summary");
  check(/2\d{3} beats/.test(summary), "the summary names the beat count");
  check(/Se 99\.\d\d %|Se 100\.00 %/.test(summary), "the summary shows detection Se against the .atr: " + summary.match(/Se [^,]*/));
  const drawn = Number(await page.evaluate(() => document.body.dataset.drawnBeats));
  check(drawn >= 8 && drawn <= 20, "a 10 s view marks 8-20 beats (" + drawn + ")");
  // The trace canvas is drawn: count dark (trace) and orange (attention) pixels.
  const pixels = await page.evaluate(() => {
    const c = document.getElementById("trace");
    const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
    let dark = 0, orange = 0;
    for (let i = 0; i < d.length; i += 4) {
      if (d[i + 3] > 200 && d[i] < 60 && d[i + 1] < 60 && d[i + 2] < 60) dark++;
      if (d[i + 3] > 20 && d[i] > 200 && d[i + 1] > 80 && d[i + 1] < 180 && d[i + 2] < 60) orange++;
    }
    return { dark, orange, w: c.width, h: c.height };
  });
  check(pixels.dark > pixels.w, "the ECG trace is drawn (" + pixels.dark + " dark pixels)");
  check(pixels.orange > 50, "the attention heat-map is drawn (" + pixels.orange + " orange pixels)");
  // Navigation: zoom out to the whole record and back without stalling.
  const before = await page.textContent("#range");
  const t0 = Date.now();
  for (let i = 0; i < 8; i++) await page.keyboard.press("-");
  const zoomed = await page.textContent("#range");
  await page.keyboard.press("e");
  await page.keyboard.press("+");
  const ms = Date.now() - t0;
  check(zoomed !== before, "zooming out (to the whole record) changes the range (" + before + " -> " + zoomed + ")");
  check(ms < 5000, "ten redraws of a 30-min record took " + ms + " ms");
  await page.evaluate(() => { document.getElementById("left").click(); document.getElementById("right").click(); });
  check(errors.length === 0, "no script errors" + (errors.length ? ": " + errors.join("; ") : ""));
  check(external.length === 0, "no request leaves the server" + (external.length ? ": " + external.join(", ") : ""));
  if (screenshot) {
    // Back to about 7 s around an ectopic beat, for the README picture.
    for (let i = 0; i < 8; i++) await page.keyboard.press("+");
    await page.keyboard.press("e");
    await page.keyboard.press("e");
    await page.screenshot({ path: screenshot, fullPage: true });
    console.log("screenshot: " + screenshot);
  }
  // Heartbeat rows (the Kaggle layout): a label per row, nothing to draw.
  await page.setInputFiles("#files", [path.join(fixtures, "..", "heartbeat", "rows-100.csv")]);
  await page.evaluate(() => { document.body.dataset.state = "loading"; });
  await page.click("#analyse");
  await page.waitForFunction(() => ["ready", "error"].includes(document.body.dataset.state), null, { timeout: 60000 });
  check((await page.evaluate(() => document.body.dataset.rows)) === "20", "20 heartbeat rows labelled (" + (await page.textContent("#status")) + ")");
  const rowsSummary = await page.textContent("#summary");
  check(/20 rows/.test(rowsSummary) && /% agree/.test(rowsSummary), "the summary names the rows and their agreement: " + rowsSummary);
  check(errors.length === 0, "no script errors after the rows" + (errors.length ? ": " + errors.join("; ") : ""));
} finally {
  await browser.close();
}
