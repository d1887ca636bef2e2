/* Rapport workspace behaviour. No inline scripts anywhere (strict CSP): pages declare what they
   need with data- attributes and this file wires it up, also inside content HTMX swaps in. */
(function () {
  "use strict";

  function charts(root) {
    if (!window.echarts) return;
    root.querySelectorAll("[data-chart]").forEach(function (el) {
      if (el.dataset.chartReady) return;
      var option;
      try { option = JSON.parse(el.dataset.chart); } catch (e) { return; }
      // No animation for reduced-motion users and automated browsers (screenshots show the data).
      if (navigator.webdriver || window.matchMedia("(prefers-reduced-motion: reduce)").matches) {
        option.animation = false;
      }
      var chart = window.echarts.init(el, null, { renderer: "canvas" });
      chart.setOption(option);
      el.dataset.chartReady = "1";
    });
  }

  function autosubmit(root) {
    root.querySelectorAll("[data-autosubmit]").forEach(function (el) {
      if (el.dataset.autosubmitReady) return;
      el.dataset.autosubmitReady = "1";
      el.addEventListener("change", function () { if (el.form) el.form.requestSubmit(); });
    });
  }

  function confirmations(root) {
    root.querySelectorAll("[data-confirm]").forEach(function (el) {
      if (el.dataset.confirmReady) return;
      el.dataset.confirmReady = "1";
      el.addEventListener("click", function (ev) {
        if (!window.confirm(el.dataset.confirm)) { ev.preventDefault(); ev.stopPropagation(); }
      });
    });
  }

  // A "tick all" box: <input type="checkbox" data-check-all="ids"> ticks every box named ids.
  function checkAll(root) {
    root.querySelectorAll("[data-check-all]").forEach(function (box) {
      if (box.dataset.checkAllReady) return;
      box.dataset.checkAllReady = "1";
      box.addEventListener("change", function () {
        document.querySelectorAll('input[type=checkbox][name="' + box.dataset.checkAll + '"]').forEach(function (el) {
          el.checked = box.checked;
        });
      });
    });
  }

  function init(root) {
    checkAll(root);
    charts(root);
    autosubmit(root);
    confirmations(root);
  }

  document.addEventListener("DOMContentLoaded", function () { init(document); });
  document.addEventListener("htmx:afterSettle", function (ev) { init(ev.target); });
  window.addEventListener("resize", function () {
    if (!window.echarts) return;
    document.querySelectorAll("[data-chart-ready]").forEach(function (el) {
      var c = window.echarts.getInstanceByDom(el);
      if (c) c.resize();
    });
  });

  /* Alpine components (CSP build: components are registered here, templates only name them). */
  document.addEventListener("alpine:init", function () {
    window.Alpine.data("toggle", function () {
      return { open: false, flip: function () { this.open = !this.open; } };
    });
  });

  window.Rapport = { init: init };
})();
