// Request shape, error surfacing, cancellation and resizing, with an injected fetch/resizer.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createClient, ImageSearchError, isAbortError, toBase64 } from "../../gateway/static/imgsearch-client.js";

const OK_BODY = { results: [{ id: "1", dfid: "h@product@1", title: "Shirt", score: 0.9 }], total: 1, page: 1, rpp: 20, query_name: "image_search", facets: {} };

/** A fetch that records calls and answers with `respond(url, init)` (default: 200 OK_BODY). */
function fakeFetch(respond = () => json(200, OK_BODY)) {
  const calls = [];
  const fn = async (url, init = {}) => {
    calls.push({ url, init });
    return respond(url, init);
  };
  fn.calls = calls;
  return fn;
}
const json = (status, body) => new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });

/** A fetch that never answers until its signal aborts (like a real slow request). */
function hangingFetch() {
  const calls = [];
  const fn = (url, init = {}) => {
    calls.push({ url, init });
    return new Promise((_, reject) => {
      init.signal?.addEventListener("abort", () => reject(init.signal.reason ?? new DOMException("aborted", "AbortError")));
    });
  };
  fn.calls = calls;
  return fn;
}

const jpegBytes = new Uint8Array([0xff, 0xd8, 0xff, 0xe0, 1, 2, 3, 250, 0xff, 0xd9]);
const photo = () => new Blob([jpegBytes], { type: "image/jpeg" });
const noResize = { resize: null };

test("searchByImage: POST to /6/{hashid}/_image_search with query, JSON body and headers", async () => {
  const fetch = fakeFetch();
  const client = createClient({ baseUrl: "https://gw.example/", hashid: "shop1", fetch, ...noResize });
  const res = await client.searchByImage(photo(), { filter: { color: ["red"] }, rpp: 10, page: 2 });
  assert.deepEqual(res, OK_BODY);
  assert.equal(fetch.calls.length, 1);
  const { url, init } = fetch.calls[0];
  const u = new URL(url);
  assert.equal(u.origin + u.pathname, "https://gw.example/6/shop1/_image_search");
  assert.deepEqual([...u.searchParams], [["filter[color][]", "red"], ["rpp", "10"], ["page", "2"]]);
  assert.equal(init.method, "POST");
  assert.equal(init.headers["Content-Type"], "application/json");
  assert.equal(init.headers.Accept, "application/json");
  assert.equal(init.headers.Authorization, undefined, "no token, no Authorization header");
  const body = JSON.parse(init.body);
  assert.deepEqual(Object.keys(body), ["image"]);
  assert.equal(body.image, Buffer.from(jpegBytes).toString("base64"));
  assert.ok(!body.image.startsWith("data:"));
  assert.ok(init.signal instanceof AbortSignal);
});

test("searchByImage: sends Authorization: Token <key> when a token is given", async () => {
  const fetch = fakeFetch();
  const client = createClient({ hashid: "shop1", token: "eu1-abc123", fetch, ...noResize });
  await client.searchByImage(photo());
  assert.equal(fetch.calls[0].init.headers.Authorization, "Token eu1-abc123");
  assert.equal(fetch.calls[0].url, "/6/shop1/_image_search", "empty baseUrl = same origin, no '?' without params");
});

test("searchByImage: accepts base64 strings and data URLs (prefix stripped), bytes and ArrayBuffers", async () => {
  const fetch = fakeFetch();
  const client = createClient({ hashid: "h", fetch });
  const b64 = Buffer.from(jpegBytes).toString("base64");
  for (const input of [b64, `data:image/jpeg;base64,${b64}`, jpegBytes, jpegBytes.buffer]) {
    await client.searchByImage(input);
  }
  for (const call of fetch.calls) assert.equal(JSON.parse(call.init.body).image, b64);
});

test("toBase64 handles large inputs (chunked)", async () => {
  const big = new Uint8Array(200_000).map((_, i) => i % 251);
  assert.equal(await toBase64(new Blob([big])), Buffer.from(big).toString("base64"));
});

test("similarTo: GET /6/{hashid}/_visually_similar?dfid=...&query, no body", async () => {
  const fetch = fakeFetch();
  const client = createClient({ baseUrl: "http://127.0.0.1:8123", hashid: "shop 1", token: "k", fetch });
  await client.similarTo("abc@product@id/1&2", { exclude: { brand: "x" }, sort: "-price", rpp: 5 });
  const { url, init } = fetch.calls[0];
  const u = new URL(url);
  assert.equal(u.pathname, "/6/shop%201/_visually_similar");
  assert.deepEqual([...u.searchParams], [["dfid", "abc@product@id/1&2"], ["exclude[brand][]", "x"], ["sort[0][price]", "desc"], ["rpp", "5"]]);
  assert.equal(init.method, "GET");
  assert.equal(init.body, undefined);
  assert.equal(init.headers["Content-Type"], undefined);
  assert.equal(init.headers.Authorization, "Token k");
});

test("searchByText: GET /6/{hashid}/_search?query=..., browse without one", async () => {
  const fetch = fakeFetch();
  const client = createClient({ hashid: "shop1", fetch });
  await client.searchByText("red dress & more", { filter: { brand: "x" }, rpp: 5 });
  const u = new URL(fetch.calls[0].url, "http://x");
  assert.equal(u.pathname, "/6/shop1/_search");
  assert.deepEqual([...u.searchParams], [["filter[brand][]", "x"], ["rpp", "5"], ["query", "red dress & more"]]);
  assert.equal(fetch.calls[0].init.method, "GET");
  await client.browse({ page: 2 });
  assert.equal(fetch.calls[1].url, "/6/shop1/_search?page=2");
  await assert.rejects(client.searchByText("   "), TypeError);
});

test("errors: 400 {error} surfaces the gateway's message and status", async () => {
  const fetch = fakeFetch(() => json(400, { error: "Invalid rpp" }));
  const client = createClient({ hashid: "h", fetch, ...noResize });
  await assert.rejects(client.searchByImage(photo(), { rpp: 1000 }), (err) => {
    assert.ok(err instanceof ImageSearchError);
    assert.equal(err.name, "ImageSearchError");
    assert.equal(err.status, 400);
    assert.equal(err.kind, "http");
    assert.equal(err.message, "Invalid rpp");
    assert.deepEqual(err.body, { error: "Invalid rpp" });
    assert.ok(!isAbortError(err));
    return true;
  });
});

test("errors: 403/404/424 messages come through for similarTo too", async () => {
  for (const [status, message] of [[403, "forbidden"], [404, "Mapping not found"], [424, "There was an error obtaining the embeddings, please try again."]]) {
    const client = createClient({ hashid: "h", fetch: fakeFetch(() => json(status, { error: message })) });
    await assert.rejects(client.similarTo("x"), { name: "ImageSearchError", status, message });
  }
});

test("errors: non-JSON 502 gives a readable message with the status", async () => {
  const fetch = fakeFetch(() => new Response("<html>Bad Gateway</html>", { status: 502, statusText: "Bad Gateway", headers: { "Content-Type": "text/html" } }));
  const client = createClient({ hashid: "h", fetch, ...noResize });
  await assert.rejects(client.searchByImage(photo()), (err) => {
    assert.ok(err instanceof ImageSearchError);
    assert.equal(err.status, 502);
    assert.equal(err.kind, "http");
    assert.match(err.message, /^HTTP 502 Bad Gateway/);
    assert.equal(err.body, "<html>Bad Gateway</html>");
    return true;
  });
});

test("errors: a 200 that is not JSON is a parse error", async () => {
  const client = createClient({ hashid: "h", fetch: fakeFetch(() => new Response("oops", { status: 200 })) });
  await assert.rejects(client.similarTo("x"), { name: "ImageSearchError", kind: "parse", status: 200 });
});

test("errors: network failures are ImageSearchError kind=network, status 0, not AbortError", async () => {
  const fetch = fakeFetch(() => { throw new TypeError("fetch failed"); });
  const client = createClient({ hashid: "h", fetch, ...noResize });
  await assert.rejects(client.searchByImage(photo()), (err) => {
    assert.ok(err instanceof ImageSearchError);
    assert.equal(err.kind, "network");
    assert.equal(err.status, 0);
    assert.match(err.message, /could not reach/);
    assert.ok(!isAbortError(err));
    assert.ok(err.cause instanceof TypeError);
    return true;
  });
});

test("abort: a new call aborts the superseded in-flight one (AbortError), the new one completes", async () => {
  let n = 0;
  const hang = hangingFetch();
  const fetch = (url, init) => (++n === 1 ? hang(url, init) : Promise.resolve(json(200, OK_BODY)));
  const client = createClient({ hashid: "h", fetch, ...noResize });
  const first = client.searchByImage(photo());
  await new Promise((r) => setTimeout(r, 5));
  const second = client.similarTo("x");
  await assert.rejects(first, (err) => {
    assert.equal(err.name, "AbortError");
    assert.ok(isAbortError(err));
    assert.ok(!(err instanceof ImageSearchError));
    return true;
  });
  assert.equal(hang.calls[0].init.signal.aborted, true);
  assert.deepEqual(await second, OK_BODY);
});

test("abort: superseded during resizing never reaches fetch", async () => {
  const fetch = fakeFetch();
  let release;
  const resize = (blob) => new Promise((r) => { release = () => r(blob); });
  const client = createClient({ hashid: "h", fetch, resize });
  const first = client.searchByImage(photo());
  const second = client.similarTo("x");
  release();
  await assert.rejects(first, { name: "AbortError" });
  await second;
  assert.equal(fetch.calls.length, 1);
  assert.match(fetch.calls[0].url, /_visually_similar/);
});

test("abort: a caller-provided signal opts out of automatic cancellation and is honoured", async () => {
  const hang = hangingFetch();
  const client = createClient({ hashid: "h", fetch: hang, ...noResize });
  const own = new AbortController();
  const mine = client.searchByImage(photo(), { signal: own.signal });
  const auto = client.similarTo("x");
  await new Promise((r) => setTimeout(r, 5));
  const mineCall = hang.calls.find((c) => c.url.includes("_image_search"));
  assert.equal(mineCall.init.signal, own.signal);
  assert.equal(own.signal.aborted, false, "the later call did not abort the caller-managed request");
  own.abort();
  await assert.rejects(mine, { name: "AbortError" });
  client.abort();
  await assert.rejects(auto, { name: "AbortError" });
});

test("abort: a completed request is not aborted by the next call", async () => {
  const fetch = fakeFetch();
  const client = createClient({ hashid: "h", fetch, ...noResize });
  await client.similarTo("a");
  await client.similarTo("b");
  assert.equal(fetch.calls[0].init.signal.aborted, false);
});

test("resize: the injected resizer's output is what gets uploaded", async () => {
  const fetch = fakeFetch();
  const small = new Uint8Array([9, 8, 7]);
  const seen = [];
  const resize = async (blob, opts) => { seen.push({ blob, opts }); return new Blob([small], { type: "image/jpeg" }); };
  const client = createClient({ hashid: "h", fetch, resize, maxSide: 300, quality: 0.7 });
  const input = photo();
  await client.searchByImage(input);
  assert.equal(seen.length, 1);
  assert.equal(seen[0].blob, input);
  assert.equal(seen[0].opts.maxSide, 300);
  assert.equal(seen[0].opts.quality, 0.7);
  assert.ok(seen[0].opts.signal instanceof AbortSignal);
  assert.equal(JSON.parse(fetch.calls[0].init.body).image, Buffer.from(small).toString("base64"));
});

test("resize: a resizer that returns its input (already small) uploads the original bytes", async () => {
  const fetch = fakeFetch();
  const client = createClient({ hashid: "h", fetch, resize: async (b) => b });
  await client.searchByImage(photo());
  assert.equal(JSON.parse(fetch.calls[0].init.body).image, Buffer.from(jpegBytes).toString("base64"));
});

test("resize: not called for base64/bytes input, nor when disabled", async () => {
  let called = 0;
  const resize = async (b) => { called++; return b; };
  const client = createClient({ hashid: "h", fetch: fakeFetch(), resize });
  await client.searchByImage(jpegBytes);
  await client.searchByImage(Buffer.from(jpegBytes).toString("base64"));
  assert.equal(called, 0);
  const off = createClient({ hashid: "h", fetch: fakeFetch(), resize: false });
  await off.searchByImage(photo());
});

test("resize: default resizer is a no-op in Node (no createImageBitmap)", async () => {
  const fetch = fakeFetch();
  await createClient({ hashid: "h", fetch }).searchByImage(photo());
  assert.equal(JSON.parse(fetch.calls[0].init.body).image, Buffer.from(jpegBytes).toString("base64"));
});

test("input validation: hashid, image and dfid are required; bad options fail before any request", async () => {
  assert.throws(() => createClient({ fetch: fakeFetch() }), /hashid/);
  const fetch = fakeFetch();
  const client = createClient({ hashid: "h", fetch });
  await assert.rejects(client.searchByImage(null), TypeError);
  await assert.rejects(client.similarTo(""), TypeError);
  await assert.rejects(client.similarTo("x", { sort: { price: "up" } }), TypeError);
  assert.equal(fetch.calls.length, 0);
});
