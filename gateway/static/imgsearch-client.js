/**
 * imgsearch-client.js: a dependency-free ES module for the image-search gateway's
 * Doofinder-compatible API (`/6/{hashid}/_image_search`, `/6/{hashid}/_visually_similar`).
 *
 * Works in browsers (it downsizes photos before upload) and in Node >= 18 (pass `resize: null`
 * or your own resizer; there is no canvas there).
 *
 *   import { createClient } from "/static/imgsearch-client.js";
 *   const client = createClient({ baseUrl: "", hashid: "shop" });
 *   const res = await client.searchByImage(file, { filter: { brand: ["acme"] }, rpp: 24 });
 *
 * @module imgsearch-client
 */

/** Longest side, in pixels, that photos are downsized to before upload. */
export const DEFAULT_MAX_SIDE = 512;
/** JPEG quality used when a photo is re-encoded. */
export const DEFAULT_QUALITY = 0.85;

/**
 * @typedef {string|number|boolean} Scalar
 * @typedef {{gte?: number|string, gt?: number|string, lte?: number|string, lt?: number|string}} RangeFilter
 * @typedef {Scalar|Scalar[]|RangeFilter|null|undefined} FilterValue
 *   An array (or a single scalar) is a terms filter (`filter[f][]=v`); an object with
 *   gte/gt/lte/lt is a range filter (`filter[f][gte]=v`); null/undefined/empty are skipped.
 * @typedef {Object<string, FilterValue>} Filters
 * @typedef {string|{field: string, size?: number, type?: "terms"|"range"|"term"}} FacetSpec
 * @typedef {"asc"|"desc"} SortOrder
 * @typedef {string|Object<string, SortOrder>} SortSpec
 *   `"price"` (asc), `"-price"` (desc) or `{price: "desc"}`; pass an array for several keys.
 *
 * @typedef {Object} SearchOptions
 * @property {Filters} [filter]   positive filters
 * @property {Filters} [exclude]  negative filters
 * @property {FacetSpec[]} [facets] facets to compute
 * @property {SortSpec|SortSpec[]} [sort] sort keys, most significant first (default: relevance)
 * @property {number} [rpp]       results per page
 * @property {number} [page]      1-based page number
 * @property {"and"|"or"} [filterExecution] how filters combine (`filter_execution`)
 * @property {Object<string, Scalar>} [params] extra plain query parameters (e.g. session_id)
 * @property {AbortSignal} [signal] your own signal; the call then takes no part in the
 *   client's automatic cancellation of superseded requests
 *
 * @typedef {Object} ResultItem
 * @property {string} id
 * @property {string} dfid
 * @property {string} title
 * @property {string} [url]
 * @property {string} [image_url]
 * @property {string} [description]
 * @property {number} [price]
 * @property {number} [score]
 *
 * @typedef {Object} SearchResponse
 * @property {ResultItem[]} results
 * @property {number} total
 * @property {number} [page]
 * @property {number} [rpp]
 * @property {string} [query_name]
 * @property {*} [facets]  see {@link normalizeFacets}
 *
 * @typedef {Object} ResizeOptions
 * @property {number} maxSide
 * @property {number} quality
 * @property {AbortSignal} [signal]
 *
 * @callback Resizer
 * @param {Blob} image
 * @param {ResizeOptions} options
 * @returns {Promise<Blob|ArrayBuffer|Uint8Array>} the image to upload (the input when no resize is needed)
 *
 * @typedef {Object} ClientOptions
 * @property {string} [baseUrl]  gateway origin, e.g. "https://search.example.com" ("" = same origin)
 * @property {string} hashid     search engine id
 * @property {string} [token]    API key, sent as `Authorization: Token <key>`. Server-side only:
 *   never ship a token to browsers (browsers are admitted by their Origin instead).
 * @property {typeof fetch} [fetch] fetch implementation (default: globalThis.fetch)
 * @property {Resizer|null|false} [resize] image downsizer (default: {@link resizeImage});
 *   null/false uploads the bytes as they are
 * @property {number} [maxSide]  default 512
 * @property {number} [quality]  default 0.85
 * @property {Object<string,string>} [headers] extra request headers
 */

/** Error for a request the gateway answered with a non-2xx status, or could not be reached. */
export class ImageSearchError extends Error {
  /**
   * @param {string} message  the gateway's `error` text when it sent one
   * @param {{status?: number, kind?: "http"|"network"|"parse", body?: *, cause?: *}} [info]
   */
  constructor(message, info = {}) {
    super(message, info.cause !== undefined ? { cause: info.cause } : undefined);
    this.name = "ImageSearchError";
    /** HTTP status; 0 for network errors. @type {number} */
    this.status = info.status ?? 0;
    /** "http" (non-2xx answer), "network" (no answer) or "parse" (2xx that is not JSON). */
    this.kind = info.kind ?? "http";
    /** Parsed JSON error body, or the raw text when it was not JSON. */
    this.body = info.body;
  }
}

/** @param {string} message */
function abortError(message = "The request was aborted") {
  if (typeof DOMException === "function") return new DOMException(message, "AbortError");
  const err = new Error(message);
  err.name = "AbortError";
  return err;
}

/** True for errors caused by an abort (ours, the caller's, or fetch's). @param {*} err */
export function isAbortError(err) {
  return !!err && (err.name === "AbortError" || err.name === "TimeoutError");
}

// ---------------------------------------------------------------------------------------------
// Query string (Doofinder v6 syntax)
// ---------------------------------------------------------------------------------------------

const RANGE_OPS = ["gte", "gt", "lte", "lt"];

/** @param {string} s */
const enc = (s) => encodeURIComponent(s);
/** Bracketed key, brackets percent-encoded as the reference asks. @param {string} root @param {...string} parts */
const key = (root, ...parts) => enc(root) + parts.map((p) => "%5B" + enc(p) + "%5D").join("");

/** @param {*} v */
function isBlank(v) {
  return v === undefined || v === null || (typeof v === "string" && v.trim() === "") ||
    (typeof v === "number" && !Number.isFinite(v));
}

/** @param {*} v */
function isRange(v) {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/**
 * @param {string} root  "filter" or "exclude"
 * @param {Filters|undefined} filters
 * @param {string[]} out
 */
function pushFilters(root, filters, out) {
  if (!filters) return;
  for (const [field, value] of Object.entries(filters)) {
    if (isBlank(value)) continue;
    if (isRange(value)) {
      const unknown = Object.keys(value).filter((op) => !RANGE_OPS.includes(op));
      if (unknown.length) {
        throw new TypeError(`${root}[${field}]: unknown range operator(s) ${unknown.join(", ")}; use gte, gt, lte, lt`);
      }
      for (const op of RANGE_OPS) {
        const bound = /** @type {any} */ (value)[op];
        if (!isBlank(bound)) out.push(`${key(root, field, op)}=${enc(String(bound))}`);
      }
      continue;
    }
    const values = Array.isArray(value) ? value : [value];
    for (const v of values) {
      if (isBlank(v)) continue;
      out.push(`${key(root, field, "")}=${enc(String(v))}`);
    }
  }
}

/** @param {SortSpec|SortSpec[]|undefined} sort @returns {[string, SortOrder][]} */
function sortPairs(sort) {
  if (isBlank(sort)) return [];
  const list = Array.isArray(sort) ? sort : [sort];
  /** @type {[string, SortOrder][]} */
  const pairs = [];
  for (const item of list) {
    if (isBlank(item)) continue;
    if (typeof item === "string") {
      pairs.push(item.startsWith("-") ? [item.slice(1), "desc"] : [item, "asc"]);
    } else {
      for (const [f, o] of Object.entries(item)) pairs.push([f, o]);
    }
  }
  for (const [f, o] of pairs) {
    if (!f) throw new TypeError("sort: empty field name");
    if (o !== "asc" && o !== "desc") throw new TypeError(`sort ${f}: order must be "asc" or "desc", got ${JSON.stringify(o)}`);
  }
  return pairs;
}

/**
 * Build the query string (without "?") for a search in Doofinder v6 syntax:
 * `filter[color][]=red`, `filter[price][gte]=10`, `exclude[brand][]=x`,
 * `facets[0][field]=brand&facets[0][size]=10`, `sort[0][price]=asc`, `rpp`, `page`.
 * Brackets are percent-encoded (%5B/%5D); field names and values are URL-encoded.
 *
 * @param {SearchOptions & {dfid?: string}} [opts]
 * @returns {string}
 */
export function buildQuery(opts = {}) {
  /** @type {string[]} */
  const out = [];
  if (!isBlank(opts.dfid)) out.push(`dfid=${enc(String(opts.dfid))}`);
  pushFilters("filter", opts.filter, out);
  pushFilters("exclude", opts.exclude, out);
  if (!isBlank(opts.filterExecution)) out.push(`filter_execution=${enc(String(opts.filterExecution))}`);
  (opts.facets ?? []).forEach((facet, i) => {
    const spec = typeof facet === "string" ? { field: facet } : facet;
    if (!spec || isBlank(spec.field)) throw new TypeError(`facets[${i}]: a field is required`);
    out.push(`${key("facets", String(i), "field")}=${enc(spec.field)}`);
    if (!isBlank(spec.size)) out.push(`${key("facets", String(i), "size")}=${enc(String(spec.size))}`);
    if (!isBlank(spec.type)) out.push(`${key("facets", String(i), "type")}=${enc(String(spec.type))}`);
  });
  sortPairs(opts.sort).forEach(([field, order], i) => {
    out.push(`${key("sort", String(i), field)}=${order}`);
  });
  if (!isBlank(opts.rpp)) out.push(`rpp=${enc(String(opts.rpp))}`);
  if (!isBlank(opts.page)) out.push(`page=${enc(String(opts.page))}`);
  for (const [k, v] of Object.entries(opts.params ?? {})) {
    if (!isBlank(v)) out.push(`${enc(k)}=${enc(String(v))}`);
  }
  return out.join("&");
}

// ---------------------------------------------------------------------------------------------
// Image preparation
// ---------------------------------------------------------------------------------------------

/**
 * Target size for a `width`×`height` image, or null when it is already small enough.
 * @param {number} width @param {number} height @param {number} [maxSide]
 * @returns {{width: number, height: number}|null}
 */
export function planResize(width, height, maxSide = DEFAULT_MAX_SIDE) {
  const longest = Math.max(width, height);
  if (!(longest > maxSide)) return null;
  const scale = maxSide / longest;
  return { width: Math.max(1, Math.round(width * scale)), height: Math.max(1, Math.round(height * scale)) };
}

/**
 * Default resizer: decodes with createImageBitmap (EXIF orientation applied), draws onto an
 * OffscreenCanvas (or a <canvas>) on white, and re-encodes as JPEG. Returns the input unchanged
 * when the environment has no image decoding (Node), when the image cannot be decoded here
 * (the gateway then decides), when it is already small, or when re-encoding would not shrink it.
 *
 * @param {Blob} image
 * @param {ResizeOptions} options
 * @param {*} [env] globals to use (for tests): createImageBitmap, OffscreenCanvas, document
 * @returns {Promise<Blob>}
 */
export async function resizeImage(image, { maxSide = DEFAULT_MAX_SIDE, quality = DEFAULT_QUALITY, signal } = /** @type {ResizeOptions} */ ({}), env = globalThis) {
  if (typeof env.createImageBitmap !== "function") return image;
  let bitmap;
  try {
    bitmap = await env.createImageBitmap(image, { imageOrientation: "from-image" });
  } catch {
    return image;
  }
  try {
    if (signal?.aborted) throw abortError();
    const target = planResize(bitmap.width, bitmap.height, maxSide);
    if (!target) return image;
    /** @type {Blob|null} */
    let out = null;
    if (typeof env.OffscreenCanvas === "function") {
      const canvas = new env.OffscreenCanvas(target.width, target.height);
      draw(canvas.getContext("2d"), bitmap, target);
      out = await canvas.convertToBlob({ type: "image/jpeg", quality });
    } else if (env.document?.createElement) {
      const canvas = env.document.createElement("canvas");
      canvas.width = target.width;
      canvas.height = target.height;
      draw(canvas.getContext("2d"), bitmap, target);
      out = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", quality));
    }
    if (!out || out.size === 0 || (out.size >= image.size && image.size > 0)) return image;
    return out;
  } finally {
    bitmap.close?.();
  }
}

/** @param {*} ctx @param {*} bitmap @param {{width:number,height:number}} size */
function draw(ctx, bitmap, { width, height }) {
  ctx.fillStyle = "#fff"; // transparent PNG areas would turn black in JPEG
  ctx.fillRect(0, 0, width, height);
  ctx.imageSmoothingQuality = "high";
  ctx.drawImage(bitmap, 0, 0, width, height);
}

/** @param {Uint8Array} bytes */
function bytesToBase64(bytes) {
  if (typeof btoa !== "function") {
    // @ts-ignore Node < 16 fallback
    return Buffer.from(bytes).toString("base64");
  }
  let binary = "";
  const chunk = 0x8000;
  for (let i = 0; i < bytes.length; i += chunk) {
    binary += String.fromCharCode.apply(null, /** @type {any} */ (bytes.subarray(i, i + chunk)));
  }
  return btoa(binary);
}

/**
 * Base64 (no `data:` prefix) of a Blob/File, ArrayBuffer, typed array, or a string that is
 * already base64 or a data URL.
 * @param {Blob|ArrayBuffer|ArrayBufferView|string} input
 * @returns {Promise<string>}
 */
export async function toBase64(input) {
  if (typeof input === "string") {
    const comma = input.startsWith("data:") ? input.indexOf(",") : -1;
    return comma >= 0 ? input.slice(comma + 1) : input;
  }
  if (input instanceof ArrayBuffer) return bytesToBase64(new Uint8Array(input));
  if (ArrayBuffer.isView(input)) return bytesToBase64(new Uint8Array(input.buffer, input.byteOffset, input.byteLength));
  if (input && typeof (/** @type {Blob} */ (input)).arrayBuffer === "function") {
    return bytesToBase64(new Uint8Array(await /** @type {Blob} */ (input).arrayBuffer()));
  }
  throw new TypeError("image must be a File, Blob, ArrayBuffer, typed array or base64 string");
}

// ---------------------------------------------------------------------------------------------
// Facets (normalises the shapes the Doofinder API uses)
// ---------------------------------------------------------------------------------------------

/**
 * @typedef {{value: string, count: number, selected: boolean}} TermOption
 * @typedef {{field: string, type: "terms", items: TermOption[]}} TermsFacet
 * @typedef {{field: string, type: "range", min: number|null, max: number|null, from: number|null, to: number|null}} RangeFacet
 */

/** @param {*} v @returns {number|null} */
const num = (v) => (v === null || v === undefined || v === "" || !Number.isFinite(Number(v)) ? null : Number(v));

/** @param {*} entry @returns {string|null} */
function termName(entry) {
  if (entry === null || entry === undefined) return null;
  if (typeof entry !== "object") return String(entry);
  const v = entry.name ?? entry.key ?? entry.value ?? entry.term ?? entry.key_as_string;
  return v === undefined || v === null ? null : String(v);
}

/** @param {string} field @param {*} body @returns {TermsFacet|RangeFacet|null} */
function normalizeOne(field, body) {
  if (!body || typeof body !== "object") return null;
  const type = body.type === "term" ? "terms" : body.type;
  const range = body.range ?? (type === "range" ? body : null);
  if (range && typeof range === "object" && !Array.isArray(range)) {
    const bucket = Array.isArray(range.buckets) ? range.buckets[0] ?? {} : {};
    const stats = range.stats ?? bucket.stats ?? {};
    const sel = range.selected ?? body.selected ?? {};
    return {
      field,
      type: "range",
      min: num(range.min ?? stats.min ?? body.min),
      max: num(range.max ?? stats.max ?? body.max),
      from: num(range.from ?? sel.from ?? sel.gte ?? sel.gt ?? bucket.from),
      to: num(range.to ?? sel.to ?? sel.lte ?? sel.lt ?? bucket.to),
    };
  }
  const terms = body.terms ?? body;
  const list = Array.isArray(terms) ? terms : terms.items ?? terms.buckets ?? body.items ?? body.buckets ?? [];
  const selectedList = (Array.isArray(terms) ? null : terms.selected) ?? body.selected ?? [];
  /** @type {Map<string, TermOption>} */
  const byValue = new Map();
  for (const entry of Array.isArray(list) ? list : []) {
    const value = termName(entry);
    if (value === null) continue;
    const count = num(entry?.count ?? entry?.doc_count ?? entry?.total?.value) ?? 0;
    byValue.set(value, { value, count, selected: entry?.selected === true });
  }
  for (const entry of Array.isArray(selectedList) ? selectedList : []) {
    const value = termName(entry);
    if (value === null) continue;
    const known = byValue.get(value);
    if (known) known.selected = true;
    else byValue.set(value, { value, count: num(entry?.count ?? entry?.doc_count) ?? 0, selected: true });
  }
  return { field, type: "terms", items: [...byValue.values()] };
}

/**
 * Turn a response's `facets` into a list of `{field, type: "terms", items}` and
 * `{field, type: "range", min, max, from, to}`. Accepts every shape of the Doofinder docs:
 * an object keyed by field or an array of `{field: {...}}` / `{key, terms|range}` entries;
 * terms as `items` (`name`/`count`) or `buckets` (`key`/`doc_count`) with a `selected` list
 * or `selected: true` flags; ranges as `{min, max, from, to}` or `buckets[0].stats`.
 *
 * @param {*} facets
 * @returns {(TermsFacet|RangeFacet)[]}
 */
export function normalizeFacets(facets) {
  /** @type {(TermsFacet|RangeFacet)[]} */
  const out = [];
  if (!facets || typeof facets !== "object") return out;
  /** @type {[string, *][]} */
  const entries = [];
  if (Array.isArray(facets)) {
    for (const f of facets) {
      if (!f || typeof f !== "object") continue;
      const name = f.key ?? f.field ?? f.name;
      if (typeof name === "string" && (f.terms || f.range || f.items || f.buckets || f.type)) entries.push([name, f]);
      else for (const [k, v] of Object.entries(f)) entries.push([k, v]);
    }
  } else {
    for (const [k, v] of Object.entries(facets)) entries.push([k, v]);
  }
  for (const [field, body] of entries) {
    const facet = normalizeOne(field, body);
    if (facet) out.push(facet);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Client
// ---------------------------------------------------------------------------------------------

/**
 * @param {ClientOptions} options
 */
export function createClient(options) {
  const { hashid } = options ?? /** @type {any} */ ({});
  if (isBlank(hashid)) throw new TypeError("createClient: hashid is required");
  const baseUrl = String(options.baseUrl ?? "").replace(/\/+$/, "");
  const doFetch = options.fetch ?? globalThis.fetch?.bind(globalThis);
  if (typeof doFetch !== "function") throw new TypeError("createClient: no fetch available; pass options.fetch");
  const resize = options.resize === undefined ? resizeImage : options.resize;
  const maxSide = options.maxSide ?? DEFAULT_MAX_SIDE;
  const quality = options.quality ?? DEFAULT_QUALITY;
  const root = `${baseUrl}/6/${encodeURIComponent(hashid)}`;

  /** @type {AbortController|null} */
  let current = null;

  /** @param {AbortSignal|undefined} own */
  function begin(own) {
    if (own) return { signal: own, done() {} };
    current?.abort(abortError("Superseded by a newer request"));
    const controller = new AbortController();
    current = controller;
    return {
      signal: controller.signal,
      done() {
        if (current === controller) current = null;
      },
    };
  }

  /** @param {boolean} hasBody */
  function headers(hasBody) {
    /** @type {Record<string,string>} */
    const h = { Accept: "application/json", ...(options.headers ?? {}) };
    if (hasBody) h["Content-Type"] = "application/json";
    if (!isBlank(options.token)) h.Authorization = `Token ${options.token}`;
    return h;
  }

  /**
   * @param {string} url @param {RequestInit} init @param {AbortSignal} signal
   * @returns {Promise<SearchResponse>}
   */
  async function send(url, init, signal) {
    /** @type {Response} */
    let res;
    try {
      res = await doFetch(url, { ...init, signal });
    } catch (err) {
      if (signal.aborted || isAbortError(err)) throw signal.reason && isAbortError(signal.reason) ? signal.reason : abortError();
      throw new ImageSearchError(`Network error: could not reach the search service (${/** @type {Error} */ (err)?.message ?? err})`, {
        status: 0, kind: "network", cause: err,
      });
    }
    let text;
    try {
      text = await res.text();
    } catch (err) {
      if (signal.aborted || isAbortError(err)) throw abortError();
      throw new ImageSearchError(`Network error while reading the response (${/** @type {Error} */ (err)?.message ?? err})`, {
        status: res.status, kind: "network", cause: err,
      });
    }
    let body;
    let parsed = false;
    try {
      body = JSON.parse(text);
      parsed = true;
    } catch {
      body = text;
    }
    if (!res.ok) {
      const message = parsed && body && typeof body === "object" && typeof body.error === "string" && body.error
        ? body.error
        : parsed && body && typeof body === "object" && typeof body.detail === "string"
          ? body.detail
          : `HTTP ${res.status}${res.statusText ? " " + res.statusText : ""}${!parsed && text.trim() ? ": " + text.trim().slice(0, 200) : ""}`;
      throw new ImageSearchError(message, { status: res.status, kind: "http", body });
    }
    if (!parsed || !body || typeof body !== "object") {
      throw new ImageSearchError(`Unexpected response from the search service (HTTP ${res.status}, not JSON)`, {
        status: res.status, kind: "parse", body,
      });
    }
    return /** @type {SearchResponse} */ (body);
  }

  /** A GET search at `path` (superseding the previous request). */
  async function get(path, opts, dfid) {
    const url = urlFor(path, opts, dfid);
    const req = begin(opts?.signal);
    try {
      return await send(url, { method: "GET", headers: headers(false) }, req.signal);
    } finally {
      req.done();
    }
  }

  /** @param {SearchOptions|undefined} opts @param {string} [dfid] */
  function urlFor(path, opts, dfid) {
    const { signal: _s, ...rest } = opts ?? {};
    const q = buildQuery({ ...rest, dfid });
    return `${root}/${path}${q ? "?" + q : ""}`;
  }

  return {
    /**
     * Search by an image: a File/Blob from an <input type=file> or drop, bytes, or base64.
     * Blobs are downsized first (longest side `maxSide`, JPEG).
     * @param {Blob|ArrayBuffer|ArrayBufferView|string} image
     * @param {SearchOptions} [opts]
     * @returns {Promise<SearchResponse>}
     */
    async searchByImage(image, opts = {}) {
      if (image === null || image === undefined || (typeof image === "string" && !image)) {
        throw new TypeError("searchByImage: an image is required");
      }
      const url = urlFor("_image_search", opts); // validates options before any work
      const req = begin(opts.signal);
      try {
        let payload = image;
        if (resize && typeof Blob !== "undefined" && image instanceof Blob) {
          payload = await resize(image, { maxSide, quality, signal: req.signal });
        }
        if (req.signal.aborted) throw req.signal.reason ?? abortError();
        const b64 = await toBase64(payload);
        if (req.signal.aborted) throw req.signal.reason ?? abortError();
        return await send(url, { method: "POST", headers: headers(true), body: JSON.stringify({ image: b64 }) }, req.signal);
      } finally {
        req.done();
      }
    },

    /**
     * Items that look like an indexed item ("more like this"), by its `dfid` (or `id`).
     * @param {string} dfid
     * @param {SearchOptions} [opts]
     * @returns {Promise<SearchResponse>}
     */
    async similarTo(dfid, opts = {}) {
      if (isBlank(dfid)) throw new TypeError("similarTo: a dfid is required");
      return get("_visually_similar", opts, String(dfid));
    },

    /**
     * Search by words (`GET _search?query=`): the gateway fuses the CLIP text tower with
     * keyword matching (per the engine's `text_search`).
     * @param {string} text
     * @param {SearchOptions} [opts]
     * @returns {Promise<SearchResponse>}
     */
    async searchByText(text, opts = {}) {
      if (isBlank(text) || !String(text).trim()) throw new TypeError("searchByText: words are required");
      return get("_search", { ...opts, params: { ...(opts.params ?? {}), query: String(text) } });
    },

    /**
     * The catalog without a query (`GET _search`), e.g. to fill a page before any search.
     * @param {SearchOptions} [opts]
     * @returns {Promise<SearchResponse>}
     */
    async browse(opts = {}) {
      return get("_search", opts);
    },

    /** Abort the in-flight request started without a caller signal, if any. */
    abort() {
      current?.abort(abortError("Aborted by the caller"));
      current = null;
    },

    /** The endpoint root, e.g. "https://host/6/shop". */
    get endpoint() {
      return root;
    },
  };
}

export default createClient;
