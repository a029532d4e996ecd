// The dashboard's script: live sections over server-sent events, running
// durations that count, and log panes that load a page at a time and
// follow a running job. Plain JavaScript, no build step.
(function () {
  'use strict';

  // live listens to a stream of {elementId: html} and swaps the sections
  // in. Elements marked data-keep (log panes) survive the swap, so a
  // pane's loaded output and its follower stay.
  function live(url) {
    var es = new EventSource(url);
    es.onmessage = function (e) {
      var sections = JSON.parse(e.data);
      Object.keys(sections).forEach(function (id) {
        var el = document.getElementById(id);
        if (el) { swap(el, sections[id]); }
      });
      tick();
      wireLogs(document);
    };
  }

  function swap(el, html) {
    var kept = {};
    el.querySelectorAll('[data-keep]').forEach(function (k) { kept[k.dataset.keep] = k; });
    el.innerHTML = html;
    el.querySelectorAll('[data-keep]').forEach(function (n) {
      var old = kept[n.dataset.keep];
      if (old) {
        var size = n.querySelector('.size'), oldSize = old.querySelector('.size');
        if (size && oldSize) { oldSize.textContent = size.textContent; }
        n.replaceWith(old);
      }
    });
  }

  // tick writes how long running things have run (data-since, unix ms).
  function tick() {
    var now = Date.now();
    document.querySelectorAll('[data-since]').forEach(function (el) {
      el.textContent = duration(now - Number(el.dataset.since));
    });
  }

  function duration(ms) {
    if (ms < 0) { ms = 0; }
    var s = Math.floor(ms / 1000);
    if (s < 60) { return s + 's'; }
    var m = Math.floor(s / 60);
    if (m < 60) { return m + 'm' + String(s % 60).padStart(2, '0') + 's'; }
    return Math.floor(m / 60) + 'h' + String(m % 60).padStart(2, '0') + 'm';
  }

  // Log panes load their tail when opened.
  function wireLogs(root) {
    root.querySelectorAll('details.log:not([data-wired])').forEach(function (d) {
      d.dataset.wired = '1';
      d.addEventListener('toggle', function () {
        if (d.open && !d.dataset.loaded) {
          d.dataset.loaded = '1';
          loadTail(d);
        }
      });
    });
  }

  function fetchPage(d, before) {
    var url = d.dataset.src + (before !== undefined ? '&before=' + before : '');
    return fetch(url, { credentials: 'same-origin' }).then(function (r) {
      if (!r.ok) { throw new Error(r.status + ' ' + r.statusText); }
      return r.text();
    }).then(function (html) {
      var t = document.createElement('template');
      t.innerHTML = html;
      return t.content.querySelector('.log-page');
    });
  }

  function loadTail(d) {
    var pre = d.querySelector('pre.ansi');
    var earlier = d.querySelector('button.earlier');
    pre.textContent = 'Loading…';
    fetchPage(d).then(function (page) {
      pre.innerHTML = page.innerHTML;
      d.dataset.start = page.dataset.start;
      earlier.hidden = page.dataset.start === '0';
      earlier.onclick = function () { loadEarlier(d); };
      pre.scrollTop = pre.scrollHeight;
      if (d.dataset.follow) { follow(d, page.dataset.end); }
    }).catch(function (err) {
      pre.textContent = 'The log could not be loaded: ' + err.message;
    });
  }

  function loadEarlier(d) {
    var pre = d.querySelector('pre.ansi');
    var earlier = d.querySelector('button.earlier');
    earlier.disabled = true;
    fetchPage(d, d.dataset.start).then(function (page) {
      var height = pre.scrollHeight;
      pre.insertAdjacentHTML('afterbegin', page.innerHTML);
      pre.scrollTop += pre.scrollHeight - height; // stay where the reader was
      d.dataset.start = page.dataset.start;
      earlier.hidden = page.dataset.start === '0';
    }).catch(function (err) {
      earlier.textContent = 'Could not load earlier output (' + err.message + '): try again';
    }).finally(function () { earlier.disabled = false; });
  }

  // follow appends what a running job writes, until the build ends.
  function follow(d, from) {
    var pre = d.querySelector('pre.ansi');
    var es = new EventSource(d.dataset.follow + '&from=' + from);
    es.onmessage = function (e) {
      var m = JSON.parse(e.data);
      var atEnd = pre.scrollHeight - pre.scrollTop - pre.clientHeight < 24;
      if (m.html) { pre.insertAdjacentHTML('beforeend', m.html); }
      if (atEnd) { pre.scrollTop = pre.scrollHeight; }
    };
    es.addEventListener('end', function (e) {
      es.close();
      var m = JSON.parse(e.data);
      if (m.error) { pre.insertAdjacentText('beforeend', '\n[the log stopped: ' + m.error + ']'); }
    });
  }

  document.addEventListener('DOMContentLoaded', function () {
    document.querySelectorAll('[data-live]').forEach(function (el) { live(el.dataset.live); });
    wireLogs(document);
    tick();
    setInterval(tick, 1000);
  });
})();
