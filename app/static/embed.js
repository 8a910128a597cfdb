/* Self-check widget loader. A practice adds one line to its page:
 *   <script src="https://CHECK-HOST/embed.js" data-lang="fr" async></script>
 * (or <div data-selfcheck data-lang="en"></div> placeholders plus that line), and this
 * inserts the form as an iframe served by CHECK-HOST. The host page's scripts can never
 * read what the patient types: the form lives on another origin. The only thing this
 * loader accepts from the iframe is its height (and title), and only from CHECK-HOST. */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || !script.src) return;
  var base = new URL(script.src, location.href);
  var widgetOrigin = base.origin;
  var widgetUrl = new URL("widget", base);
  var frames = [];
  var MIN_HEIGHT = 120;
  var MAX_HEIGHT = 10000;

  // The placeholder's data-lang, the script's, then the host page's own <html lang="fr-FR">:
  // a French practice page gets a French widget whatever the browser's language. Only
  // when none names a language the widget speaks does the widget follow the browser.
  function language(element) {
    var candidates = [
      element.getAttribute("data-lang"),
      script.getAttribute("data-lang"),
      document.documentElement.getAttribute("lang"),
    ];
    for (var i = 0; i < candidates.length; i++) {
      var lang = (candidates[i] || "").toLowerCase().split("-")[0];
      if (lang === "fr" || lang === "en") return lang;
    }
    return "";
  }

  function makeFrame(element) {
    var url = new URL(widgetUrl.href);
    var lang = language(element);
    if (lang) url.searchParams.set("lang", lang);
    // Where the widget may post its height; an opaque origin ("null") gets no messages.
    url.searchParams.set("host", location.origin);
    var frame = document.createElement("iframe");
    frame.src = url.href;
    var title = element.getAttribute("data-title") || script.getAttribute("data-title");
    if (title) frame.title = title;
    frame.setAttribute("referrerpolicy", "no-referrer");
    if (widgetOrigin !== location.origin) {
      // The widget may run its script, keep its own origin (to call its API) and open
      // links in a new tab; it may not navigate the practice's page. (Same-origin, as on
      // the demo page, a sandbox with allow-same-origin would protect nothing.)
      frame.setAttribute(
        "sandbox",
        "allow-scripts allow-same-origin allow-forms allow-popups allow-popups-to-escape-sandbox"
      );
    }
    // CSSOM properties, not a style attribute: allowed under a host CSP without 'unsafe-inline'.
    frame.style.display = "block";
    frame.style.width = "100%";
    frame.style.maxWidth = "42rem";
    frame.style.height = "640px";
    frame.style.border = "0";
    frames.push(frame);
    return frame;
  }

  function mount() {
    var placeholders = document.querySelectorAll("[data-selfcheck]:not([data-selfcheck-mounted])");
    if (placeholders.length === 0) {
      if (script.getAttribute("data-selfcheck-mounted") === null && script.parentNode) {
        script.setAttribute("data-selfcheck-mounted", "");
        script.parentNode.insertBefore(makeFrame(script), script.nextSibling);
      }
      return;
    }
    for (var i = 0; i < placeholders.length; i++) {
      placeholders[i].setAttribute("data-selfcheck-mounted", "");
      placeholders[i].appendChild(makeFrame(placeholders[i]));
    }
  }

  window.addEventListener("message", function (event) {
    if (event.origin !== widgetOrigin) return;
    var data = event.data;
    if (!data || typeof data !== "object" || data.type !== "selfcheck:resize") return;
    for (var i = 0; i < frames.length; i++) {
      if (frames[i].contentWindow !== event.source) continue;
      var height = Number(data.height);
      if (isFinite(height) && height > 0) {
        frames[i].style.height = Math.min(Math.max(Math.ceil(height), MIN_HEIGHT), MAX_HEIGHT) + "px";
      }
      if (typeof data.title === "string" && data.title) frames[i].title = data.title.slice(0, 200);
    }
  });

  // An async script may run before the rest of the page is parsed: wait for placeholders.
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", mount);
  else mount();
})();
