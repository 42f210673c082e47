// Demo shop page for the image-search gateway: plain ES module, no build step.
// Served at /demo/{hashid}; talks to the gateway's Doofinder-compatible API via imgsearch-client.js.
import { createClient, resizeImage, normalizeFacets, isAbortError } from "/static/imgsearch-client.js";

const $ = (sel, root = document) => root.querySelector(sel);
const tid = (id, root = document) => root.querySelector(`[data-testid="${id}"]`);
const app = document.getElementById("app");
const qs = new URLSearchParams(location.search);

// ----- configuration ---------------------------------------------------------------------------

// /demo/{hashid}: the last path segment, unless the path ends at /demo itself.
const pathSegments = location.pathname.split("/").filter(Boolean);
const pathHashid = pathSegments.length >= 2 ? decodeURIComponent(pathSegments[pathSegments.length - 1]) : "";
const config = {
  hashid: qs.get("hashid") || app.dataset.hashid || pathHashid,
  baseUrl: qs.get("base") ?? app.dataset.baseUrl ?? "",
  rpp: clampInt(qs.get("rpp") ?? app.dataset.rpp, 12, 1, 100),
  sortField: qs.get("sort_field") || app.dataset.sortField || "price",
  facets: parseFacetConfig(qs.get("facets") ?? app.dataset.facets ?? "category,brand,colors,price:range"),
};

/** "category,brand:terms:20,price:range" → [{field, type?, size?}] ; "none"/"" → [] */
function parseFacetConfig(text) {
  if (!text || text.trim() === "none") return [];
  return text.split(",").map((s) => s.trim()).filter(Boolean).map((entry) => {
    const [field, type, size] = entry.split(":").map((s) => s.trim());
    if (type === "range") return { field, type: "range" };
    const n = Number(size);
    return { field, size: Number.isInteger(n) && n > 0 ? n : 20, ...(type === "terms" ? { type: "terms" } : {}) };
  });
}

function clampInt(value, fallback, min, max) {
  const n = Number.parseInt(value, 10);
  return Number.isFinite(n) ? Math.min(max, Math.max(min, n)) : fallback;
}

// ----- state -----------------------------------------------------------------------------------

const client = createClient({ baseUrl: config.baseUrl, hashid: config.hashid });
const state = {
  /** @type {null | {kind: "browse"} | {kind: "text", text: string} | {kind: "image", blob: Blob, name: string} | {kind: "similar", dfid: string, title: string}} */
  query: null,
  /** @type {Map<string, Set<string>>} selected term values per field */
  terms: new Map(),
  /** @type {Map<string, {gte?: number, lte?: number}>} */
  ranges: new Map(),
  sort: "",
  page: 1,
  /** facets requested (fields the gateway rejected are dropped) */
  facets: config.facets.slice(),
  /** last facet list shown, so selected values stay listed */
  shownFacets: /** @type {any[]} */ ([]),
  seq: 0,
  thumbUrl: "",
  /** what the grid shows now */
  rendered: /** @type {null | {query: any, page: number}} */ (null),
};

tid("engine").textContent = config.hashid ? `· ${config.hashid}` : "";
if (matchMedia("(max-width: 700px)").matches) tid("filters").open = false;

// ----- search ----------------------------------------------------------------------------------

function searchOptions() {
  const filter = {};
  for (const [field, values] of state.terms) if (values.size) filter[field] = [...values];
  for (const [field, r] of state.ranges) if (r.gte !== undefined || r.lte !== undefined) filter[field] = { ...r };
  return {
    filter,
    facets: state.facets,
    sort: state.sort ? [{ [config.sortField]: state.sort }] : undefined,
    rpp: config.rpp,
    page: state.page,
  };
}

async function runSearch() {
  if (!state.query) return;
  const seq = ++state.seq;
  setLoading(true);
  showError("");
  try {
    let res;
    for (;;) {
      try {
        const opts = searchOptions();
        const q = state.query;
        res = q.kind === "image" ? await client.searchByImage(q.blob, opts)
          : q.kind === "similar" ? await client.similarTo(q.dfid, opts)
          : q.kind === "text" ? await client.searchByText(q.text, opts)
          : await client.browse(opts);
        break;
      } catch (err) {
        const dropped = err?.status === 400 ? rejectedFacet(err.message) : null;
        if (!dropped) throw err;
        // The engine has no such facet field: keep the demo usable without it.
        console.warn(`demo: facet "${dropped}" rejected by the gateway (${err.message}); retrying without it`);
        state.facets = state.facets.filter((f) => f.field !== dropped);
      }
    }
    if (seq !== state.seq) return;
    render(res);
    state.rendered = { query: state.query, page: state.page };
  } catch (err) {
    if (isAbortError(err) || seq !== state.seq) return; // superseded by a newer search
    showError(errorText(err));
    if (state.rendered?.query === state.query) {
      state.page = state.rendered.page; // e.g. a page beyond the pool: stay on the last good page
    } else {
      clearResults();
    }
  } finally {
    if (seq === state.seq) setLoading(false);
  }
}

/** The requested, unfiltered facet field a 400 error message names, if any. */
function rejectedFacet(message) {
  const text = String(message || "");
  for (const f of state.facets) {
    if (state.terms.get(f.field)?.size || state.ranges.has(f.field)) continue;
    const re = new RegExp(`(^|[^\\w])${f.field.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}([^\\w]|$)`);
    if (re.test(text)) return f.field;
  }
  return null;
}

function errorText(err) {
  if (err?.name === "ImageSearchError") {
    if (err.kind === "network") return "Could not reach the search service. Check your connection and try again.";
    const fromGateway = err.body && typeof err.body === "object" && (err.body.error || err.body.detail);
    if (!fromGateway && err.status) return `The search service failed (HTTP ${err.status}). Please try again.`;
    return err.status ? `${err.message} (HTTP ${err.status})` : err.message;
  }
  return `Something went wrong: ${err?.message ?? err}`;
}

// ----- rendering -------------------------------------------------------------------------------

const priceFormat = new Intl.NumberFormat(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 2 });

function render(res) {
  const results = Array.isArray(res?.results) ? res.results : [];
  const total = Number.isFinite(Number(res?.total)) ? Number(res.total) : results.length;
  const rpp = Number(res?.rpp) > 0 ? Number(res.rpp) : config.rpp;
  const page = Number(res?.page) > 0 ? Number(res.page) : state.page;
  const pages = Math.max(1, Math.ceil(total / rpp));

  const grid = tid("results");
  grid.replaceChildren(...results.map(resultCard));
  tid("hint").hidden = true;
  tid("empty").hidden = results.length > 0;
  tid("total").textContent = `${total} ${total === 1 ? "result" : "results"}`;
  tid("total").dataset.total = String(total);

  tid("pager").hidden = total === 0;
  tid("page-info").textContent = `Page ${page} of ${pages}`;
  tid("page-info").dataset.page = String(page);
  tid("page-info").dataset.pages = String(pages);
  tid("prev-page").disabled = page <= 1;
  tid("next-page").disabled = page >= pages;
  tid("sort").disabled = false;

  renderFacets(normalizeFacets(res?.facets));
}

function resultCard(item) {
  const li = el("li", { class: "card", "data-testid": "result", "data-dfid": item.dfid ?? "", "data-id": item.id ?? "" });
  const title = item.title || item.id || "Untitled";
  const media = el("div", { class: "card-media" });
  if (item.image_url) {
    const img = el("img", { src: item.image_url, alt: title, loading: "lazy", decoding: "async", "data-testid": "result-image" });
    img.addEventListener("error", () => media.classList.add("broken"), { once: true });
    media.append(img);
  } else {
    media.classList.add("broken");
  }
  const name = item.url
    ? el("a", { href: item.url, target: "_blank", rel: "noopener", class: "card-title", "data-testid": "result-title" }, title)
    : el("span", { class: "card-title", "data-testid": "result-title" }, title);
  const meta = el("div", { class: "card-meta" });
  const price = Number(item.price);
  if (item.price !== undefined && item.price !== null && item.price !== "" && Number.isFinite(price)) {
    meta.append(el("span", { class: "price", "data-testid": "result-price" }, priceFormat.format(price)));
  }
  const score = Number(item.score);
  if (Number.isFinite(score)) {
    meta.append(el("span", { class: "score", "data-testid": "result-score", title: "similarity score" }, `score ${score.toFixed(3)}`));
  }
  const similar = el("button", { type: "button", class: "similar", "data-testid": "result-similar" }, "Similar");
  similar.disabled = !item.dfid;
  similar.addEventListener("click", () => {
    state.query = { kind: "similar", dfid: item.dfid, title };
    resetRefinements();
    showQuery(`Items similar to “${title}”`, item.image_url || "");
    runSearch();
    window.scrollTo({ top: 0, behavior: "smooth" });
  });
  li.append(media, el("div", { class: "card-body" }, name, meta, similar));
  return li;
}

function renderFacets(facets) {
  // Keep facets the user has refined on visible even if the response omits them.
  const byField = new Map(facets.map((f) => [f.field, f]));
  for (const old of state.shownFacets) {
    const refined = state.terms.get(old.field)?.size || state.ranges.has(old.field);
    if (!byField.has(old.field) && refined) byField.set(old.field, old.type === "terms" ? { ...old, items: old.items.map((i) => ({ ...i, count: 0 })) } : old);
  }
  const order = state.facets.map((f) => f.field);
  const list = [...byField.values()].sort((a, b) => rank(order, a.field) - rank(order, b.field));
  state.shownFacets = list;

  const box = tid("facets");
  box.replaceChildren(...list.map((f) => (f.type === "range" ? rangeFacet(f) : termsFacet(f))).filter(Boolean));
  const refined = [...state.terms.values()].some((s) => s.size) || state.ranges.size > 0;
  tid("clear-filters").hidden = !refined;
}

const rank = (order, field) => (order.includes(field) ? order.indexOf(field) : order.length);
const label = (field) => field.replace(/[_-]+/g, " ").replace(/^\w/, (c) => c.toUpperCase());

function termsFacet(facet) {
  const selected = state.terms.get(facet.field) ?? new Set();
  const items = facet.items.map((i) => ({ ...i, selected: i.selected || selected.has(i.value) }));
  for (const value of selected) {
    if (!items.some((i) => i.value === value)) items.push({ value, count: 0, selected: true });
  }
  if (!items.length) return null;
  const box = el("fieldset", { class: "facet", "data-testid": `facet-${facet.field}`, "data-field": facet.field },
    el("legend", {}, label(facet.field)));
  const ul = el("ul", { class: "options" });
  for (const item of items) {
    const input = el("input", { type: "checkbox", value: item.value, "data-testid": "facet-option-input" });
    input.checked = item.selected;
    input.addEventListener("change", () => {
      const set = state.terms.get(facet.field) ?? new Set();
      if (input.checked) set.add(item.value); else set.delete(item.value);
      state.terms.set(facet.field, set);
      state.page = 1;
      runSearch();
    });
    ul.append(el("li", {},
      el("label", { class: "option", "data-testid": "facet-option", "data-value": item.value, "data-count": String(item.count), "data-selected": String(item.selected) },
        input,
        el("span", { class: "option-name" }, item.value),
        el("span", { class: "count", "data-testid": "facet-count" }, String(item.count)))));
  }
  box.append(ul);
  return box;
}

function rangeFacet(facet) {
  const current = state.ranges.get(facet.field) ?? {};
  if (facet.min === null && facet.max === null && current.gte === undefined && current.lte === undefined) return null;
  const box = el("fieldset", { class: "facet range", "data-testid": `facet-${facet.field}`, "data-field": facet.field,
    "data-min": facet.min ?? "", "data-max": facet.max ?? "" }, el("legend", {}, label(facet.field)));
  const fmt = (v) => (v === null || v === undefined ? "" : String(Math.round(v * 100) / 100));
  const lo = facet.min === null ? "" : String(Math.floor(facet.min));
  const hi = facet.max === null ? "" : String(Math.ceil(facet.max));
  const min = el("input", { type: "number", inputmode: "decimal", step: "any", "aria-label": `${facet.field} from`,
    placeholder: lo || "min", "data-testid": "range-min" });
  const max = el("input", { type: "number", inputmode: "decimal", step: "any", "aria-label": `${facet.field} to`,
    placeholder: hi || "max", "data-testid": "range-max" });
  min.value = fmt(current.gte ?? facet.from ?? undefined);
  max.value = fmt(current.lte ?? facet.to ?? undefined);
  const apply = el("button", { type: "button", "data-testid": "range-apply" }, "Apply");
  const form = el("div", { class: "range-inputs" }, min, el("span", { "aria-hidden": "true" }, "–"), max, apply);
  const submit = () => {
    const r = {};
    if (min.value !== "" && Number.isFinite(Number(min.value))) r.gte = Number(min.value);
    if (max.value !== "" && Number.isFinite(Number(max.value))) r.lte = Number(max.value);
    if (r.gte !== undefined && r.lte !== undefined && r.gte > r.lte) {
      showError(`${label(facet.field)}: the minimum is above the maximum.`);
      return;
    }
    if (r.gte === undefined && r.lte === undefined) state.ranges.delete(facet.field);
    else state.ranges.set(facet.field, r);
    state.page = 1;
    runSearch();
  };
  apply.addEventListener("click", submit);
  for (const input of [min, max]) input.addEventListener("keydown", (e) => { if (e.key === "Enter") submit(); });
  box.append(form);
  if (facet.min !== null && facet.max !== null) {
    box.append(el("small", { class: "range-hint" }, `${fmt(facet.min)} – ${fmt(facet.max)}`));
  }
  return box;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  for (const c of children) if (c !== null && c !== undefined) node.append(c);
  return node;
}

function setLoading(on) {
  tid("loading").hidden = !on;
  document.body.classList.toggle("is-loading", on);
  tid("results").setAttribute("aria-busy", String(on));
}

function showError(message) {
  const box = tid("error");
  box.textContent = message;
  box.hidden = !message;
}

function clearResults() {
  tid("results").replaceChildren();
  tid("total").textContent = "";
  tid("pager").hidden = true;
  tid("empty").hidden = true;
}

function showQuery(text, thumbSrc) {
  tid("query-info").hidden = false;
  tid("query-text").textContent = text;
  const thumb = tid("query-thumb");
  thumb.hidden = !thumbSrc;
  if (thumbSrc) thumb.src = thumbSrc;
}

function resetRefinements() {
  state.terms.clear();
  state.ranges.clear();
  state.page = 1;
  state.shownFacets = [];
}

// ----- input -----------------------------------------------------------------------------------

async function useImage(file) {
  if (!file) return;
  if (file.type && !file.type.startsWith("image/")) {
    showError(`“${file.name}” is not an image.`);
    return;
  }
  showError("");
  setLoading(true);
  let blob = file;
  try {
    blob = await resizeImage(file, { maxSide: 512, quality: 0.85 }); // once, not on every page/filter change
  } catch {
    blob = file;
  }
  if (state.thumbUrl) URL.revokeObjectURL(state.thumbUrl);
  state.thumbUrl = URL.createObjectURL(blob);
  state.query = { kind: "image", blob, name: file.name || "photo" };
  resetRefinements();
  showQuery(`Items like your photo${file.name ? ` (${file.name})` : ""}`, state.thumbUrl);
  await runSearch();
}

tid("file-input").addEventListener("change", (e) => {
  const input = /** @type {HTMLInputElement} */ (e.target);
  useImage(input.files?.[0]);
  input.value = ""; // choosing the same file again searches again
});

const zone = tid("dropzone");
for (const type of ["dragenter", "dragover"]) {
  document.addEventListener(type, (e) => {
    if (![...(e.dataTransfer?.types ?? [])].includes("Files")) return;
    e.preventDefault();
    zone.classList.add("dragging");
  });
}
for (const type of ["dragleave", "dragend"]) document.addEventListener(type, () => zone.classList.remove("dragging"));
document.addEventListener("drop", (e) => {
  const file = [...(e.dataTransfer?.files ?? [])].find((f) => f.type.startsWith("image/")) ?? e.dataTransfer?.files?.[0];
  if (!file) return;
  e.preventDefault();
  zone.classList.remove("dragging");
  useImage(file);
});
document.addEventListener("paste", (e) => {
  const file = [...(e.clipboardData?.files ?? [])].find((f) => f.type.startsWith("image/"));
  if (file) useImage(file);
});

tid("sort").addEventListener("change", (e) => {
  state.sort = /** @type {HTMLSelectElement} */ (e.target).value;
  state.page = 1;
  runSearch();
});
tid("prev-page").addEventListener("click", () => {
  if (state.page > 1) { state.page -= 1; runSearch(); }
});
tid("next-page").addEventListener("click", () => {
  state.page += 1;
  runSearch();
});
tid("clear-filters").addEventListener("click", () => {
  state.terms.clear();
  state.ranges.clear();
  state.page = 1;
  runSearch();
});

tid("text-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const text = /** @type {HTMLInputElement} */ (tid("text-input")).value.trim();
  state.query = text ? { kind: "text", text } : { kind: "browse" };
  resetRefinements();
  showQuery(text ? `Results for “${text}”` : "The whole catalog", "");
  runSearch();
});

if (!config.hashid) {
  showError("No search engine in the URL: open /demo/{hashid}.");
} else {
  // A first visit shows the catalog at once, so "similar" is one click away.
  state.query = { kind: "browse" };
  runSearch();
}

// On a phone the results matter first: keep the filter panel folded (one tap opens it).
const narrow = window.matchMedia("(max-width: 700px)");
const foldFilters = () => {
  const panel = tid("filters");
  if (panel && narrow.matches) panel.open = false;
};
foldFilters();
narrow.addEventListener("change", foldFilters);
