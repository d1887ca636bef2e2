/* Home dashboard charts. The page carries the values in data-* attributes (no inline script under
   the strict CSP); this file builds the ECharts options: bars for lifecycle stages, a ring for
   regions, bars + line for revenue and orders per month. */
(function () {
  "use strict";

  var PALETTE = ["#2563eb", "#10b981", "#f59e0b", "#ef4444", "#8b5cf6", "#06b6d4", "#84cc16", "#f97316", "#94a3b8"];

  function parse(el, name) {
    try { return JSON.parse(el.getAttribute("data-" + name) || "[]"); } catch (e) { return []; }
  }

  function moneyFormatter(el) {
    var currency = el.dataset.currency || "CNY";
    var locale = el.dataset.locale || document.documentElement.lang || "zh-CN";
    var full = new Intl.NumberFormat(locale, { style: "currency", currency: currency, maximumFractionDigits: 0 });
    var compact = new Intl.NumberFormat(locale, { notation: "compact", maximumSignificantDigits: 3 });
    return { full: function (v) { return full.format(v); }, compact: function (v) { return compact.format(v); } };
  }

  function barOption(el) {
    return {
      color: PALETTE,
      grid: { left: 8, right: 16, top: 16, bottom: 8, containLabel: true },
      tooltip: { trigger: "axis", axisPointer: { type: "shadow" } },
      xAxis: { type: "category", data: parse(el, "labels"), axisLabel: { interval: 0, hideOverlap: true } },
      yAxis: { type: "value", minInterval: 1 },
      series: [{ name: el.dataset.seriesName || "", type: "bar", data: parse(el, "values"), barMaxWidth: 48,
                 itemStyle: { borderRadius: [4, 4, 0, 0] }, label: { show: true, position: "top" } }]
    };
  }

  function pieOption(el) {
    var labels = parse(el, "labels"), values = parse(el, "values");
    return {
      color: PALETTE,
      tooltip: { trigger: "item", formatter: "{b}: {c} ({d}%)" },
      legend: { type: "scroll", orient: "vertical", right: 0, top: "middle" },
      series: [{
        name: el.dataset.seriesName || "", type: "pie", radius: ["45%", "72%"], center: ["38%", "50%"],
        avoidLabelOverlap: true, label: { show: false },
        data: labels.map(function (name, i) { return { name: name, value: values[i] }; })
      }]
    };
  }

  function revenueOption(el) {
    var money = moneyFormatter(el);
    return {
      color: ["#2563eb", "#f59e0b"],
      grid: { left: 8, right: 8, top: 40, bottom: 8, containLabel: true },
      legend: { top: 0 },
      tooltip: { trigger: "axis", valueFormatter: function (v) { return v; } },
      xAxis: { type: "category", data: parse(el, "labels") },
      yAxis: [
        { type: "value", axisLabel: { formatter: money.compact } },
        { type: "value", minInterval: 1, splitLine: { show: false } }
      ],
      series: [
        { name: el.dataset.seriesName || "", type: "bar", data: parse(el, "values"), barMaxWidth: 36,
          itemStyle: { borderRadius: [4, 4, 0, 0] }, tooltip: { valueFormatter: money.full } },
        { name: el.dataset.ordersName || "", type: "line", yAxisIndex: 1, smooth: true, data: parse(el, "orders") }
      ]
    };
  }

  var BUILDERS = { bar: barOption, pie: pieOption, revenue: revenueOption };

  function draw(root) {
    if (!window.echarts) return;
    root.querySelectorAll("[data-dash-chart]").forEach(function (el) {
      if (el.dataset.chartReady) return;
      var build = BUILDERS[el.dataset.dashChart];
      if (!build) return;
      var chart = window.echarts.init(el, null, { renderer: "canvas" });
      chart.setOption(build(el));
      el.dataset.chartReady = "1";
    });
  }

  document.addEventListener("DOMContentLoaded", function () { draw(document); });
  document.addEventListener("htmx:afterSettle", function (ev) { draw(ev.target); });
})();
