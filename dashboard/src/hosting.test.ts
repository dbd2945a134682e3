// @vitest-environment node
// The dashboard as infra/template.yaml hosts it on CloudFront: the viewer-request function
// (DashboardSpaFunction) must hand every deep link the router understands to index.html,
// and leave the built files, config.json and the API alone.
import { describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseRoute } from "./router";

type Request = { uri: string; querystring?: Record<string, { value: string }> };
type Handler = (event: { request: Request }) => Request;

/** The `FunctionCode: |` block of DashboardSpaFunction, as CloudFront runs it. */
function spaHandler(): Handler {
  const template = readFileSync(
    fileURLToPath(new URL("../../infra/template.yaml", import.meta.url)),
    "utf8",
  );
  const lines = template.split("\n");
  const start = lines.indexOf("  DashboardSpaFunction:");
  expect(start, "DashboardSpaFunction in infra/template.yaml").toBeGreaterThan(-1);
  const code = lines.findIndex((l, i) => i > start && l.trim() === "FunctionCode: |");
  expect(code, "its FunctionCode").toBeGreaterThan(start);
  const indent = /^ */.exec(lines[code + 1])![0].length;
  const body: string[] = [];
  for (const l of lines.slice(code + 1)) {
    if (l.trim() !== "" && /^ */.exec(l)![0].length < indent) break;
    body.push(l.slice(indent));
  }
  return new Function(`${body.join("\n")}\nreturn handler;`)() as Handler;
}

const uri = (h: Handler, path: string) => h({ request: { uri: path } }).uri;

describe("the CloudFront SPA function", () => {
  const handler = spaHandler();

  it("serves index.html for every view's deep link", () => {
    const run = "/runs/r0123456789abcdef01234567";
    for (const path of ["/", run, `${run}/`, "/production"]) {
      expect(uri(handler, path), path).toBe("/index.html");
    }
    // ... and those are the router's views, not its fallback.
    expect(parseRoute("/runs/r0123456789abcdef01234567", "").view).toBe("run");
    expect(parseRoute("/production", "").view).toBe("production");
  });

  it("leaves files alone", () => {
    const files = ["/index.html", "/config.json", "/assets/index-Bq1x9.js", "/assets/index-C2.css"];
    for (const path of [...files, "/favicon.svg"]) {
      expect(uri(handler, path), path).toBe(path);
    }
  });

  it("keeps the query string of a filtered list", () => {
    const req = handler({ request: { uri: "/", querystring: { state: { value: "FAILED" } } } });
    expect(req.uri).toBe("/index.html");
    expect(req.querystring).toEqual({ state: { value: "FAILED" } });
  });
});
