/* helpdesk-bot drafts: the ticket sidebar app (Zendesk Apps framework v2).
 *
 * Every call to helpdesk-bot goes through client.request with `secure: true`: Zendesk's proxy
 * replaces {{setting.shared_secret}} (a secure setting the browser never sees), signs a JSON Web
 * Token with it and puts the token where {{jwt.token}} stands. helpdesk-bot checks that token.
 */
(function () {
  'use strict';

  var client = ZAFClient.init();
  var state = { ticketId: null, agentId: null, subdomain: null, apiUrl: null, view: null, verdict: null };
  var $ = function (id) { return document.getElementById(id); };

  // --- talking to helpdesk-bot ---------------------------------------------------------------

  function api(path, method, body) {
    var options = {
      url: state.apiUrl + '/agent-app/api/tickets/' + encodeURIComponent(state.ticketId) + path,
      type: method,
      dataType: 'json',
      contentType: 'application/json',
      secure: true,
      cors: false,
      headers: { Authorization: 'Bearer {{jwt.token}}' },
      jwt: {
        algorithm: 'HS256',
        secret_key: '{{setting.shared_secret}}',
        expiry: 60,
        claims: {
          iss: 'https://' + state.subdomain + '.zendesk.com',
          sub: String(state.agentId),
          ticket_id: String(state.ticketId)
        }
      }
    };
    if (body !== undefined) options.data = JSON.stringify(body);
    return client.request(options);
  }

  function errorMessage(error, fallback) {
    // client.request rejects with the response: {status, responseText, ...}.
    var text = error && error.responseText;
    try {
      var parsed = JSON.parse(text);
      if (parsed && parsed.error) return parsed.error;
    } catch (ignored) { /* not JSON */ }
    if (error && error.status === 0) return 'helpdesk-bot could not be reached';
    return fallback + (error && error.status ? ' (HTTP ' + error.status + ')' : '');
  }

  // --- rendering ------------------------------------------------------------------------------

  function setStatus(text, isError) {
    var status = $('status');
    status.textContent = text;
    status.className = 'status' + (isError ? ' error' : '');
    status.hidden = !text;
  }

  function safeUrl(url) {
    return /^https?:\/\//i.test(url || '') ? url : null;
  }

  function render(view) {
    state.view = view;
    var badge = $('confidence');
    badge.textContent = 'Confidence ' + view.confidence + '/100';
    badge.className = 'badge ' + (view.confidence >= view.threshold ? 'high' : 'low');
    var decided = {auto_send: 'would send by itself', held_back: 'held back: an agent took the ticket while it was drafted'};
    $('decision').textContent = (decided[view.action] || 'handed to a human') +
      ' (' + view.rule + ' needs ' + view.threshold + ')';
    $('draft-origin').textContent = view.regenerated
      ? 'New draft, not saved or sent.'
      : 'Draft from ' + new Date(view.created_at * 1000).toLocaleString() + ' (' + view.drafter + ').';

    var draft = $('draft');
    draft.textContent = '';
    if (view.declined || !view.draft.trim()) {
      var none = document.createElement('p');
      none.className = 'muted';
      none.textContent = 'No draft: the knowledge base does not hold the answer.';
      draft.appendChild(none);
    } else {
      // [n] points at the n-th cited source; with no citation known there is nothing to point at.
      var citesKnown = view.sources.some(function (source) { return source.cited; });
      var text = citesKnown ? view.draft : view.draft.replace(/\s*\[\d+\]/g, '');
      text.split(/\n\s*\n/).forEach(function (paragraph) {
        var p = document.createElement('p');
        paragraph.split('\n').forEach(function (line, i) {
          if (i) p.appendChild(document.createElement('br'));
          p.appendChild(document.createTextNode(line));
        });
        draft.appendChild(p);
      });
    }
    $('insert').disabled = !view.draft_html;

    var rows = $('components').querySelector('tbody');
    rows.textContent = '';
    view.components.forEach(function (c) {
      var tr = document.createElement('tr');
      [c.name, c.value.toFixed(2), c.weight.toFixed(2)].forEach(function (text) {
        var td = document.createElement('td');
        td.textContent = text;
        tr.appendChild(td);
      });
      if (c.detail) tr.title = c.detail;
      rows.appendChild(tr);
    });
    var reasons = $('reasons');
    reasons.textContent = '';
    view.reasons.forEach(function (reason) {
      var li = document.createElement('li');
      li.textContent = reason;
      reasons.appendChild(li);
    });

    var sources = $('sources');
    sources.textContent = '';
    view.sources.forEach(function (source) {
      var li = document.createElement('li');
      var url = safeUrl(source.url);
      var label = url ? document.createElement('a') : document.createElement('span');
      label.textContent = source.title;
      if (url) {
        label.href = url;
        label.target = '_blank';
        label.rel = 'noopener noreferrer';
      }
      li.appendChild(label);
      var score = document.createElement('span');
      score.className = 'muted';
      score.textContent = ' similarity ' + source.similarity.toFixed(2) + (source.cited ? ', cited' : '');
      li.appendChild(score);
      sources.appendChild(li);
    });
    if (!view.sources.length) {
      var empty = document.createElement('li');
      empty.className = 'muted';
      empty.textContent = 'No sources retrieved.';
      sources.appendChild(empty);
    }

    resetFeedback();
    $('draft-panel').hidden = false;
    setStatus('');
    resize();
  }

  function resize() {
    client.invoke('resize', { width: '100%', height: Math.max(120, document.body.scrollHeight + 8) + 'px' });
  }

  // --- actions --------------------------------------------------------------------------------

  function loadDraft() {
    setStatus('Loading the draft…');
    return api('/draft', 'GET').then(render, function (error) {
      $('draft-panel').hidden = true;
      setStatus(error && error.status === 404 ? 'helpdesk-bot has not drafted an answer for this ticket yet.'
        : errorMessage(error, 'Could not load the draft'), error && error.status !== 404);
      resize();
    });
  }

  function insertDraft() {
    if (!state.view || !state.view.draft_html) return Promise.resolve();
    return client.invoke('ticket.editor.insert', state.view.draft_html).then(function () {
      setStatus('Draft inserted into your reply.');
    }, function () {
      setStatus('Could not insert the draft into the editor.', true);
    });
  }

  function regenerate() {
    var button = $('regenerate');
    button.disabled = true;
    setStatus('Writing a new draft…');
    return api('/regenerate', 'POST', {}).then(render, function (error) {
      setStatus(errorMessage(error, 'Could not write a new draft'), true);
    }).then(function () { button.disabled = false; });
  }

  function resetFeedback() {
    state.verdict = null;
    ['verdict-good', 'verdict-bad'].forEach(function (id) { $(id).setAttribute('aria-pressed', 'false'); });
    $('reason').value = '';
    $('send-feedback').disabled = true;
    $('feedback-status').textContent = '';
  }

  function chooseVerdict(event) {
    state.verdict = event.currentTarget.getAttribute('data-verdict');
    ['verdict-good', 'verdict-bad'].forEach(function (id) {
      $(id).setAttribute('aria-pressed', String($(id).getAttribute('data-verdict') === state.verdict));
    });
    $('send-feedback').disabled = false;
  }

  function sendFeedback(event) {
    event.preventDefault();
    var reason = $('reason').value.trim();
    var status = $('feedback-status');
    if (!state.verdict) return Promise.resolve();
    if (state.verdict === 'bad' && !reason) {
      status.textContent = 'Say what was wrong with the draft.';
      status.className = 'error';
      return Promise.resolve();
    }
    $('send-feedback').disabled = true;
    return api('/feedback', 'POST', {
      verdict: state.verdict,
      reason: reason,
      decision_id: state.view ? state.view.decision_id : null
    }).then(function () {
      status.className = 'muted';
      status.textContent = 'Thanks: your feedback was recorded.';
    }, function (error) {
      status.className = 'error';
      status.textContent = errorMessage(error, 'Could not record the feedback');
      $('send-feedback').disabled = false;
    });
  }

  // --- start ----------------------------------------------------------------------------------

  function start() {
    return Promise.all([client.metadata(), client.context(), client.get(['ticket.id', 'currentUser'])])
      .then(function (results) {
        var metadata = results[0], context = results[1], data = results[2];
        state.apiUrl = String(metadata.settings.api_url || '').replace(/\/+$/, '');
        state.subdomain = context.account.subdomain;
        state.ticketId = data['ticket.id'];
        state.agentId = data.currentUser.id;
        if (!state.apiUrl) {
          setStatus('Set the helpdesk-bot URL in the app settings.', true);
          return null;
        }
        return loadDraft();
      })
      .catch(function () { setStatus('The app could not start.', true); });
  }

  $('insert').addEventListener('click', insertDraft);
  $('regenerate').addEventListener('click', regenerate);
  $('verdict-good').addEventListener('click', chooseVerdict);
  $('verdict-bad').addEventListener('click', chooseVerdict);
  $('feedback').addEventListener('submit', sendFeedback);
  client.on('app.registered', start);
}());
