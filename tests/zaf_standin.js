/* A stand-in for the ZAF SDK 2.0 (zaf_sdk.min.js), served at the SDK's own URL in browser tests.
 *
 * It records every call in window.__zaf.calls. request() goes to window.zafProxy, a function the
 * test exposes from Python that does what Zendesk's proxy does for `secure: true` requests:
 * fill in {{setting.*}}, sign the JWT, put it where {{jwt.token}} stands, and call the product.
 * Like the real client, request() resolves with the parsed body and rejects with
 * {status, responseText} for an HTTP error.
 */
(function () {
  'use strict';
  var config = window.__zafConfig;
  var calls = [];
  var handlers = {};
  window.__zaf = { calls: calls, handlers: handlers };

  function record(method, args) {
    calls.push({ method: method, args: JSON.parse(JSON.stringify(args)) });
  }

  var values = {
    'ticket.id': config.ticketId,
    'currentUser': config.currentUser,
    'ticket.requester.name': config.requesterName || ''
  };

  var client = {
    get: function (paths) {
      record('get', [paths]);
      var list = Array.isArray(paths) ? paths : [paths];
      var result = { errors: {} };
      list.forEach(function (path) { result[path] = values[path]; });
      return Promise.resolve(result);
    },
    invoke: function (name) {
      var args = Array.prototype.slice.call(arguments, 1);
      record('invoke', [name].concat(args));
      if (config.failInvoke && config.failInvoke === name) return Promise.reject(new Error('refused'));
      return Promise.resolve({ errors: {} });
    },
    metadata: function () {
      record('metadata', []);
      return Promise.resolve({ appId: 0, installationId: config.installationId, settings: config.settings });
    },
    context: function () {
      record('context', []);
      return Promise.resolve({ account: { subdomain: config.subdomain }, location: 'ticket_sidebar',
                               product: 'support', ticketId: config.ticketId });
    },
    request: function (options) {
      record('request', [options]);
      return window.zafProxy(options).then(function (response) {
        if (response.status >= 200 && response.status < 300) {
          return response.body ? JSON.parse(response.body) : null;
        }
        return Promise.reject({ status: response.status, responseText: response.body });
      });
    },
    on: function (event, handler) {
      record('on', [event]);
      (handlers[event] = handlers[event] || []).push(handler);
      // The framework fires app.registered once the app's frame is ready.
      if (event === 'app.registered') setTimeout(function () { handler({ metadata: {}, context: {} }); }, 0);
    },
    trigger: function (event, data) {
      (handlers[event] || []).forEach(function (handler) { handler(data); });
    }
  };

  window.ZAFClient = { init: function () { record('init', []); return client; } };
}());
