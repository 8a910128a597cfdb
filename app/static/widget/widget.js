/* The self-check form, inside its own-origin iframe. No strings here: every text a
 * patient reads comes from widget/i18n/<lang>.json. No storage, no cookies, no
 * third-party request: the three fields go to POST v1/check on this origin only, with
 * the proof of work solved by the vendored ALTCHA worker (widget/vendor/). */
(() => {
  "use strict";

  // ---- Rules: the same as lookup_index/normalise.py, so nothing the server would
  // refuse is ever sent and nothing it would accept is ever blocked. -------------
  const MAX_NIR_INPUT = 40;
  const MAX_NAME = 100;
  // Spaces and dashes of any kind (NBSP, en dash, minus sign...), dots, format characters.
  const NIR_SEPARATORS = /[\s\x1c-\x1f.\u2212\p{Zs}\p{Pd}\p{Cf}]+/gu;
  const PARTICLES = ["DE", "DU", "DES", "D", "LA", "LE", "LES", "L"];
  // sex, year, month, department (2 digits or 2A/2B), 6 digits, 2 key digits.
  const NIR_SHAPE = /^[0-9]{5}(?:[0-9]{2}|2[AB])[0-9]{8}$/;
  const SEX_DIGITS = "123478";
  const EARLIEST = { year: 1890, month: 1, day: 1 };
  const NIR_GROUPS = [1, 2, 2, 2, 3, 3, 2];
  // Letters NFKD cannot split into base letter + accent (as in normalise.py).
  const LETTER_FOLDS = {
    "Œ": "OE", "œ": "OE", "Æ": "AE", "æ": "AE", "ß": "SS", "ẞ": "SS",
    "Ø": "O", "ø": "O", "Ł": "L", "ł": "L", "Đ": "D", "đ": "D",
    "Þ": "TH", "þ": "TH", "Ð": "D", "ð": "D", "ı": "I",
  };
  const FOLDABLE = new RegExp("[" + Object.keys(LETTER_FOLDS).join("") + "]", "gu");

  const compactNir = (raw) => raw.replace(NIR_SEPARATORS, "").toUpperCase();

  /** Returns null when valid, else "nir_required" | "nir_format" | "nir_range" | "nir_key". */
  function checkNir(raw) {
    if (raw.trim() === "") return "nir_required";
    if ([...raw].length > MAX_NIR_INPUT) return "nir_format";
    const nir = compactNir(raw);
    if (!NIR_SHAPE.test(nir)) return "nir_format";
    const month = Number(nir.slice(3, 5));
    const monthOk = (month >= 1 && month <= 12) || (month >= 20 && month <= 42) || month >= 50;
    if (!SEX_DIGITS.includes(nir[0]) || !monthOk || nir.slice(10, 13) === "000") return "nir_range";
    const key = Number(nir.slice(13));
    if (nirKey(nir) !== key || key < 1 || key > 97) return "nir_key";
    return null;
  }

  /** 97 - (first 13 characters as a number, 2A -> 19 and 2B -> 18) mod 97. */
  function nirKey(nir) {
    let body = nir.slice(0, 13);
    const department = body.slice(5, 7);
    if (department === "2A") body = body.slice(0, 5) + "19" + body.slice(7);
    else if (department === "2B") body = body.slice(0, 5) + "18" + body.slice(7);
    // 13 digits stay below 2^53: exact in a double.
    return 97 - (Number(body) % 97);
  }

  /** {code, iso}: code null when the date is real, not in the future and not before 1890. */
  function checkDate(dayRaw, monthRaw, yearRaw, today) {
    const parts = [dayRaw, monthRaw, yearRaw].map((p) => p.trim());
    if (parts.every((p) => p === "")) return { code: "date_required", iso: null };
    if (!/^[0-9]{1,2}$/.test(parts[0]) || !/^[0-9]{1,2}$/.test(parts[1]) || !/^[0-9]{4}$/.test(parts[2])) {
      return { code: "date_invalid", iso: null };
    }
    const [day, month, year] = parts.map(Number);
    if (day === 0 && month <= 12) {
      // 00: an unknown day, or day and month, as on the papers of many born abroad.
      const iso = `${parts[2]}-${String(month).padStart(2, "0")}-00`;
      const now = today || new Date();
      if (year < EARLIEST.year) return { code: "date_too_old", iso };
      if (year * 12 + month > now.getFullYear() * 12 + now.getMonth() + 1) return { code: "date_future", iso };
      return { code: null, iso };
    }
    const probe = new Date(Date.UTC(2000, month - 1, day));
    probe.setUTCFullYear(year);
    if (probe.getUTCFullYear() !== year || probe.getUTCMonth() !== month - 1 || probe.getUTCDate() !== day) {
      return { code: "date_invalid", iso: null };
    }
    const iso = `${parts[2]}-${String(month).padStart(2, "0")}-${String(day).padStart(2, "0")}`;
    const earliest = `${EARLIEST.year}-0${EARLIEST.month}-0${EARLIEST.day}`;
    if (iso < earliest) return { code: "date_too_old", iso };
    if (iso > isoDate(today || new Date())) return { code: "date_future", iso };
    return { code: null, iso };
  }

  const isoDate = (d) =>
    `${String(d.getFullYear()).padStart(4, "0")}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;

  /** NFKC, fold accents and ligatures, upper-case: the letters before only A-Z are kept. */
  function foldLetters(raw) {
    let text = raw.normalize("NFKC").replace(FOLDABLE, (c) => LETTER_FOLDS[c]);
    text = text.normalize("NFKD").replace(/\p{M}/gu, "");
    return text.toUpperCase().replace(FOLDABLE, (c) => LETTER_FOLDS[c]);
  }

  /** The server's canonical name: A-Z words, leading particles dropped, AE/OE/UE folded. */
  function foldName(raw) {
    const words = foldLetters(raw).split(/[^A-Z]+/).filter(Boolean);
    while (words.length > 1 && PARTICLES.includes(words[0])) words.shift();
    return words.join("").replace(/([AOU])E+/g, "$1");
  }

  /** A letter the folding cannot bring to A-Z (Cyrillic, Greek, CJK...); modifier letters
   *  such as the apostrophe U+02BC are separators. The server refuses such a name. */
  const isForeignLetter = (c) => /\p{L}/u.test(c) && !/\p{Lm}/u.test(c) && !/[A-Z]/.test(c);

  /** Returns null when valid, else "name_required" | "name_too_long" | "name_not_latin" | "name_invalid". */
  function checkName(raw) {
    const name = raw.trim(); // what is sent
    if (name === "") return "name_required";
    if ([...name].length > MAX_NAME) return "name_too_long";
    if ([...foldLetters(name)].some(isForeignLetter)) return "name_not_latin";
    return foldName(name) === "" ? "name_invalid" : null;
  }

  /** Whether a valid NIR's year and month agree with a birth date; a mismatch is only a hint. */
  function nirMatchesDate(raw, iso) {
    const nir = compactNir(raw);
    const [year, month] = iso.split("-").map(Number);
    if (Number(nir.slice(1, 3)) !== year % 100) return false;
    if (month === 0) return true;
    const nirMonth = Number(nir.slice(3, 5));
    if (nirMonth >= 1 && nirMonth <= 12) return nirMonth === month;
    if (nirMonth >= 31 && nirMonth <= 42) return nirMonth === month + 30;
    return (nirMonth >= 20 && nirMonth <= 30) || nirMonth >= 50;
  }

  /** "185037511542323" -> "1 85 03 75 115 423 23", as printed on the Carte Vitale. */
  function formatNir(raw) {
    const chars = raw.toUpperCase().replace(/[^0-9AB]/g, "").slice(0, 15);
    const groups = [];
    let start = 0;
    for (const size of NIR_GROUPS) {
      if (start >= chars.length) break;
      groups.push(chars.slice(start, start + size));
      start += size;
    }
    return groups.join(" ");
  }

  // Exposed so the test suite can prove, in a real browser, that these rules match the server's.
  window.SelfcheckRules = Object.freeze({ checkNir, checkDate, checkName, foldName, nirMatchesDate, formatNir, nirKey });

  // ---- Page --------------------------------------------------------------------
  const $ = (id) => document.getElementById(id);
  const params = new URLSearchParams(location.search);
  const catalogues = {};
  let strings = null;
  let shown = null; // what the answer area shows, so a language switch can re-render it
  let busy = false; // false, "securing" (waiting for the proof of work) or "checking"

  function pickLang() {
    const asked = (params.get("lang") || "").toLowerCase();
    if (asked === "fr" || asked === "en") return asked;
    for (const tag of navigator.languages || [navigator.language || ""]) {
      const primary = tag.slice(0, 2).toLowerCase();
      if (primary === "fr" || primary === "en") return primary;
    }
    return "fr";
  }

  async function loadCatalogue(lang) {
    if (!catalogues[lang]) {
      const response = await fetch(`widget/i18n/${lang}.json`, { credentials: "omit" });
      if (!response.ok) throw new Error(`catalogue ${lang}: ${response.status}`);
      catalogues[lang] = await response.json();
    }
    return catalogues[lang];
  }

  function lookup(path) {
    return path.split(".").reduce((node, key) => (node == null ? node : node[key]), strings);
  }

  function t(path, values) {
    const text = lookup(path);
    if (typeof text !== "string") throw new Error(`missing string ${path}`);
    return text.replace(/\{(\w+)\}/g, (whole, name) => (values && name in values ? values[name] : whole));
  }

  function applyStrings() {
    document.documentElement.lang = t("meta.lang");
    document.title = t("meta.title");
    for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
    const switcher = $("switch");
    switcher.lang = t("meta.switch_lang");
    switcher.setAttribute("aria-label", t("meta.switch_aria"));
    $("privacy-link").href = t("privacy.href");
    for (const field of ["nir", "date", "name"]) {
      const error = $(`${field}-error`);
      if (error.dataset.code) error.textContent = t(`errors.${error.dataset.code}`);
    }
    if (busy) $("submit").textContent = t(`form.${busy}`);
    if (shown) render(shown, false);
  }

  async function switchLanguage(lang) {
    strings = await loadCatalogue(lang);
    applyStrings();
    reportSize();
  }

  // ---- Validation display ----------------------------------------------------------
  const FIELDS = {
    nir: { inputs: ["nir"], describedBy: "nir-hint" },
    date: { inputs: ["day", "month", "year"], describedBy: "date-hint" },
    name: { inputs: ["name"], describedBy: "name-hint" },
  };

  function setError(field, code) {
    const error = $(`${field}-error`);
    error.hidden = !code;
    error.textContent = code ? t(`errors.${code}`) : "";
    if (code) error.dataset.code = code;
    else delete error.dataset.code;
    const spec = FIELDS[field];
    for (const id of spec.inputs) {
      const input = $(id);
      if (code) input.setAttribute("aria-invalid", "true");
      else input.removeAttribute("aria-invalid");
      if (field !== "date") {
        input.setAttribute("aria-describedby", code ? `${spec.describedBy} ${field}-error` : spec.describedBy);
      } else if (code) {
        input.setAttribute("aria-describedby", "date-error"); // each part says what is wrong
      } else {
        input.removeAttribute("aria-describedby");
      }
    }
    if (field === "date") {
      $("date-field").querySelector("fieldset").setAttribute(
        "aria-describedby", code ? "date-hint date-error" : "date-hint");
    }
  }

  /** Day, month, year typed; with "I don't know my day or month" an empty part is 00. */
  function dateParts() {
    const unknown = $("unknown-date").checked;
    const part = (id) => (unknown && $(id).value.trim() === "" ? "00" : $(id).value);
    return [part("day"), part("month"), $("year").value];
  }

  function validate() {
    const nirCode = checkNir($("nir").value);
    const date = checkDate(...dateParts());
    if (date.code === "date_invalid" && $("day").value.trim() === "" && $("year").value.trim() !== "") {
      date.code = "date_day_missing"; // points to "I don't know my day or month of birth"
    }
    const nameCode = checkName($("name").value);
    setError("nir", nirCode);
    setError("date", date.code);
    setError("name", nameCode);
    updateMismatchHint(nirCode, date);
    const firstInvalid = (nirCode && "nir") || (date.code && "day") || (nameCode && "name") || null;
    return { firstInvalid, iso: date.iso };
  }

  function updateMismatchHint(nirCode, date) {
    const mismatch = !nirCode && !date.code && !nirMatchesDate($("nir").value, date.iso);
    $("nir-mismatch").hidden = !mismatch;
    $("nir").setAttribute("aria-describedby",
      [FIELDS.nir.describedBy, nirCode ? "nir-error" : "", mismatch ? "nir-mismatch" : ""].filter(Boolean).join(" "));
    reportSize();
  }

  function liveHint() {
    // The hint only, while typing: errors wait for a submit, not to scold mid-entry.
    const nirCode = checkNir($("nir").value);
    updateMismatchHint(nirCode, checkDate(...dateParts()));
  }

  // ---- NIR formatting as the patient types -------------------------------------------
  function onNirInput(event) {
    const input = event.target;
    const caret = input.selectionStart ?? input.value.length;
    const significantBefore = input.value.slice(0, caret).toUpperCase().replace(/[^0-9AB]/g, "").length;
    const formatted = formatNir(input.value);
    if (formatted !== input.value) {
      input.value = formatted;
      let position = 0;
      let seen = 0;
      while (position < formatted.length && seen < significantBefore) {
        if (formatted[position] !== " ") seen += 1;
        position += 1;
      }
      input.setSelectionRange(position, position);
    }
    liveHint();
  }

  function onNirKeydown(event) {
    // Deleting next to a group space deletes the character beyond it, not a space we would re-insert.
    const input = event.target;
    if (input.selectionStart !== input.selectionEnd) return;
    const at = input.selectionStart;
    if (event.key === "Backspace" && at > 1 && input.value[at - 1] === " ") input.setSelectionRange(at - 1, at - 1);
    if (event.key === "Delete" && input.value[at] === " ") input.setSelectionRange(at + 1, at + 1);
  }

  // ---- Proof of work ----------------------------------------------------------------
  // Every check carries the ALTCHA v2 solution (Argon2id, in the vendored worker) of a
  // fresh challenge: that admits it in the class the server keeps for those who paid.
  // Solving starts when the form gets focus, while the patient types. Without one (no
  // WebAssembly, a failed fetch) the check still goes, in the small unproven class.
  const SOLVE_TIMEOUT_MS = 90000;
  let proof = null; // { promise: Promise<string|null>, ready: boolean }

  function solveFresh() {
    return new Promise((resolve) => {
      let worker = null;
      const done = (payload) => {
        if (worker) worker.terminate();
        resolve(payload);
      };
      fetch("v1/challenge", { credentials: "omit", cache: "no-store", referrerPolicy: "no-referrer" })
        .then((response) => (response.ok ? response.json() : null))
        .then((challenge) => {
          if (!challenge || !challenge.parameters) return done(null);
          worker = new Worker("widget/vendor/altcha-argon2id.js");
          worker.onerror = () => done(null);
          worker.onmessage = ({ data }) => {
            if (!data || data.error || !Number.isInteger(data.counter)) return done(null);
            const solution = { counter: data.counter, derivedKey: data.derivedKey };
            done(btoa(JSON.stringify({ challenge, solution })));
          };
          worker.postMessage({ type: "work", challenge, counterStart: 0, counterStep: 1, timeout: SOLVE_TIMEOUT_MS });
        })
        .catch(() => done(null));
    });
  }

  function startProof() {
    if (proof) return;
    const started = { promise: null, ready: false };
    started.promise = solveFresh().then((payload) => {
      started.ready = true;
      return payload;
    });
    proof = started;
  }

  /** The proof for this submission; the next submission gets a fresh challenge. */
  function takeProof() {
    startProof();
    const taken = proof;
    proof = null;
    return taken;
  }

  // ---- The check ----------------------------------------------------------------
  async function onSubmit(event) {
    event.preventDefault();
    if (busy) return;
    const { firstInvalid, iso } = validate();
    if (firstInvalid) {
      $(firstInvalid).focus();
      return;
    }
    const taken = takeProof();
    setBusy(taken.ready ? "checking" : "securing");
    const payload = await taken.promise;
    if (busy !== "checking") setBusy("checking");
    const body = {
      nir: compactNir($("nir").value),
      birth_date: iso,
      last_name: $("name").value.trim(),
      lang: t("meta.lang"),
    };
    if (payload) body.altcha = payload;
    let state;
    try {
      const response = await fetch("v1/check", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
        credentials: "omit",
        cache: "no-store",
        referrerPolicy: "no-referrer",
        signal: AbortSignal.timeout ? AbortSignal.timeout(20000) : undefined,
      });
      state = await stateOf(response);
    } catch (error) {
      state = { kind: "error" };
    }
    setBusy(false);
    startProof(); // ready for a retry or another check
    render(state, true);
  }

  async function stateOf(response) {
    if (response.status === 200) {
      const answer = await response.json();
      // Private delivery: one answer whatever the outcome; the outcome went to the contact.
      if (answer.status === "submitted") return { kind: "submitted" };
      if (answer.status === "affected" || answer.status === "not_found") {
        return {
          kind: answer.status,
          exposed: Array.isArray(answer.exposed) ? answer.exposed.map(String) : [],
          incident: answer.incident && typeof answer.incident.label === "string" ? answer.incident.label : "",
          // Several incidents: each served one, with what it exposed (empty where not affected).
          incidents: Array.isArray(answer.incidents)
            ? answer.incidents.filter((i) => i && typeof i.label === "string").map((i) => ({
              label: i.label,
              affected: i.affected === true,
              exposed: Array.isArray(i.exposed) ? i.exposed.map(String) : [],
            }))
            : [],
        };
      }
      return { kind: "error" };
    }
    const retry = (fallback) => {
      const seconds = Number.parseInt(response.headers.get("Retry-After") || "", 10);
      return Number.isFinite(seconds) && seconds > 0 && seconds < 86400 ? seconds : fallback;
    };
    if (response.status === 429) return { kind: "rate_limited", retryAt: Date.now() + retry(60) * 1000, seconds: retry(60) };
    if (response.status === 503) return { kind: "unavailable", retryAt: Date.now() + retry(30) * 1000, seconds: retry(30) };
    if (response.status === 422) return { kind: "invalid" };
    return { kind: "error" };
  }

  /** false, or the phase: "securing" (solving the proof of work), then "checking". */
  function setBusy(value) {
    busy = value;
    const button = $("submit");
    button.disabled = Boolean(value);
    button.textContent = t(value ? `form.${value}` : "form.submit");
    $("check").setAttribute("aria-busy", String(Boolean(value)));
    if (value) {
      const answer = $("answer");
      answer.className = "answer busy";
      answer.replaceChildren(el("p", {}, t(`form.${value}`)));
      shown = null;
      reserveAnswerSpace();
      reportSize();
    }
  }

  // ---- Rendering -------------------------------------------------------------------
  function el(tag, attributes, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
    for (const child of children) node.append(child);
    return node;
  }

  const list = (items) => el("ul", {}, ...items.map((item) => el("li", {}, item)));
  const section = (heading, ...content) => [el("h3", {}, heading), ...content];
  const external = (text, href) => el("a", { href, target: "_blank", rel: "noopener noreferrer" }, text);

  const ANSWERS = new Set(["affected", "not_found", "submitted"]);

  /** Catalogue paths of the exposed categories, in the answer's order (unknown codes: "other"). */
  function categoryPaths(exposed) {
    const known = lookup("answer.categories");
    return [...new Set(exposed.map((code) => (Object.hasOwn(known, code) ? `answer.categories.${code}` : "answer.category_other")))];
  }

  /** The answer's heading and content, for a state (or, with state.paths, for given categories). */
  function answerNodes(state) {
    const title = el("h2", { tabindex: "-1", id: "answer-title" });
    let content = [];
    if (state.kind === "affected") {
      const a = "answer.affected.";
      title.textContent = t(`${a}title`);
      content = [
        el("p", {}, t(`${a}summary`)),
        ...((state.incidents || []).length > 1
          ? [el("p", { class: "incident" }, t("answer.incidents")), el("ul", { id: "incidents" }, ...state.incidents.filter((i) => i.affected).map((i) =>
            el("li", {}, el("span", { class: "category" }, i.label), categoryPaths(i.exposed).map((path) => t(`${path}.label`)).join(", "))))]
          : state.incident ? [el("p", { class: "incident" }, `${t("answer.incident")} ${state.incident}`)] : []),
        ...section(t(`${a}exposed_heading`), el("ul", { id: "exposed" }, ...(state.paths || categoryPaths(state.exposed)).map((path) =>
          el("li", { "data-category": path.split(".").pop() }, el("span", { class: "category" }, t(`${path}.label`)), t(`${path}.meaning`))))),
        ...section(t(`${a}actions_heading`), list(lookup(`${a}actions`))),
        ...section(t(`${a}scams_heading`), list(lookup(`${a}scams`))),
        ...section(t(`${a}report_heading`), el("p", {}, t(`${a}report`)), el("p", {}, external(t(`${a}report_link`), t(`${a}report_href`)))),
        ...section(t(`${a}complaint_heading`), el("p", {}, t(`${a}complaint`)), el("p", {}, external(t(`${a}complaint_link`), t(`${a}complaint_href`)))),
        ...section(t(`${a}relatives_heading`), el("p", {}, t(`${a}relatives`))),
      ];
    } else if (state.kind === "submitted") {
      const s = "answer.submitted.";
      title.textContent = t(`${s}title`);
      content = [el("p", {}, t(`${s}message`)), el("p", { class: "hint" }, t(`${s}hint`))];
    } else if (state.kind === "not_found") {
      const n = "answer.not_found.";
      title.textContent = t(`${n}title`);
      content = [
        ...section(t(`${n}means_heading`), el("p", {}, t(`${n}means`))),
        ...section(t(`${n}not_means_heading`), el("p", {}, t(`${n}not_means`))),
        ...section(t(`${n}actions_heading`), list(lookup(`${n}actions`))),
      ];
    } else {
      title.textContent = t(`problems.${state.kind}_title`);
      const values = state.retryAt ? { wait: waitText(state.seconds), time: clockText(state.retryAt) } : {};
      content = [el("p", {}, t(`problems.${state.kind}`, values))];
    }
    if (ANSWERS.has(state.kind)) {
      // After a problem the form stays filled in, ready for the retry.
      content.push(el("button", { type: "button", class: "secondary", id: "again" }, t("answer.again")));
    }
    return [title, ...content];
  }

  function render(state, moveFocus) {
    shown = state;
    const answer = $("answer");
    const [title, ...content] = answerNodes(state);
    answer.className = `answer ${state.kind}`;
    answer.replaceChildren(title, ...content);
    $("again")?.addEventListener("click", reset);
    reserveAnswerSpace();
    reportSize();
    if (moveFocus) focusAnswer(title);
  }

  function focusAnswer(title) {
    // Focus alone would scroll the host page too, to show the heading, by an amount that
    // depends on the heading's height (the two outcomes' titles wrap to different line
    // counts) and that the host can read. The answer's top is at the same place whatever
    // the outcome: bring that to the top of the view instead.
    title.focus({ preventScroll: true });
    const show = () => $("answer").scrollIntoView({ block: "start", inline: "nearest" });
    const before = window.innerHeight;
    if (!host || before >= Math.ceil(document.body.getBoundingClientRect().height)) {
      show();
      return;
    }
    // Not before the host has given the frame its new height: until then the answer lies
    // below the frame's bottom, the frame would scroll inside itself, and the resize would
    // undo it (leaving the host page showing the form). A host that never resizes: 1 s.
    let timer = 0;
    const done = () => {
      window.removeEventListener("resize", onResize);
      clearTimeout(timer);
      show();
    };
    const onResize = () => {
      if (window.innerHeight !== before) done();
    };
    window.addEventListener("resize", onResize);
    timer = setTimeout(done, 1000);
  }

  // ---- The frame's height must not tell the host page the outcome ----------------------
  // The host page sees the frame's height (it sets it from our messages), and its scripts
  // are what the frame keeps the patient's data from. An affected answer is far taller than
  // a not-found one, and grows with the exposed categories: so while either is shown, the
  // result area takes the height it would have with the tallest possible answer (affected,
  // every category and "other", measured at this width, in this language), and a shorter
  // answer leaves blank space below the privacy notice. Problems (429, 503, invalid) happen
  // before the lookup and say nothing of the outcome: they keep their own heights.
  let reservedWidth = null;

  function reserveAnswerSpace() {
    const result = $("result");
    result.style.minHeight = "";
    reservedWidth = null;
    if (!shown || !ANSWERS.has(shown.kind)) return;
    const answer = $("answer");
    const around = result.getBoundingClientRect().height - answer.getBoundingClientRect().height;
    const every = [...Object.keys(lookup("answer.categories")).map((code) => `answer.categories.${code}`), "answer.category_other"];
    const tallest = Math.max(
      // Every served incident affected, with every category: the tallest list there can be.
      measureAnswer({
        kind: "affected",
        incident: shown.incident,
        paths: every,
        incidents: (shown.incidents || []).map((i) => ({ ...i, affected: true, exposed: Object.keys(lookup("answer.categories")).concat("other") })),
      }),
      measureAnswer({ kind: "not_found" }),
      measureAnswer({ kind: "submitted" }),
    );
    // CSSOM, not a style attribute: allowed by the page's CSP (no 'unsafe-inline').
    result.style.minHeight = `${around + tallest}px`;
    reservedWidth = answer.getBoundingClientRect().width;
  }

  /** An answer's height at the real answer's width: laid out hidden, measured, removed in one task. */
  function measureAnswer(state) {
    const copy = el("div", { class: `answer ${state.kind}` }, ...answerNodes(state));
    for (const node of copy.querySelectorAll("[id]")) node.removeAttribute("id");
    const box = el("div", { class: "measure", "aria-hidden": "true" }, copy);
    $("result").append(box);
    const height = copy.getBoundingClientRect().height;
    box.remove();
    return height;
  }

  function onWidthChange() {
    // The frame's height also changes on every report: only a new width needs a new measure.
    if (reservedWidth === null || $("answer").getBoundingClientRect().width === reservedWidth) return;
    reserveAnswerSpace();
    reportSize();
  }

  function waitText(seconds) {
    const plural = new Intl.PluralRules(t("meta.lang"));
    const [key, n] = seconds < 60 ? ["wait_seconds", seconds] : ["wait_minutes", Math.ceil(seconds / 60)];
    return t(`problems.${key}.${plural.select(n) === "one" ? "one" : "other"}`, { n: String(n) });
  }

  const clockText = (at) => new Date(at).toLocaleTimeString(t("meta.lang"), { hour: "2-digit", minute: "2-digit" });

  function reset() {
    $("check").reset();
    for (const field of Object.keys(FIELDS)) setError(field, null);
    $("nir-mismatch").hidden = true;
    $("answer").replaceChildren();
    $("answer").className = "answer";
    shown = null;
    reserveAnswerSpace();
    reportSize();
    $("nir").focus();
  }

  // ---- Size reporting to the embedding page -----------------------------------------
  // Only the height and the page title ever cross to the host page, and only to the
  // origin embed.js announced (a message to any other origin is dropped by the browser).
  function hostOrigin() {
    const host = params.get("host");
    if (!host || window.parent === window) return null;
    try {
      return new URL(host).origin === host ? host : null;
    } catch {
      return null;
    }
  }
  const host = hostOrigin();
  let reported = "";

  function reportSize() {
    if (!host) return;
    const height = Math.ceil(document.body.getBoundingClientRect().height);
    const title = document.title;
    if (height === 0 || `${height} ${title}` === reported) return;
    reported = `${height} ${title}`;
    window.parent.postMessage({ type: "selfcheck:resize", height, title }, host);
  }

  async function start() {
    strings = await loadCatalogue(pickLang());
    applyStrings();
    $("switch").addEventListener("click", () => switchLanguage(t("meta.switch_lang")));
    $("check").addEventListener("submit", onSubmit);
    $("check").addEventListener("focusin", startProof, { once: true });
    $("nir").addEventListener("input", onNirInput);
    $("nir").addEventListener("keydown", onNirKeydown);
    for (const id of ["day", "month", "year", "unknown-date"]) $(id).addEventListener("input", liveHint);
    $("app").hidden = false;
    // A resize event comes before the ResizeObserver's callbacks in a frame's update: the
    // reserved height is already right for the new width when the new height is reported.
    window.addEventListener("resize", onWidthChange);
    if (host && "ResizeObserver" in window) new ResizeObserver(reportSize).observe(document.body);
    reportSize();
  }

  start();
})();
