// The API page: Swagger UI rendering /openapi.json (the same origin's
// static description, www/openapi.json). "Try it out" sends real requests to
// this server.
/* global SwaggerUIBundle */
(function () {
  "use strict";
  const error = document.getElementById("api-error");
  if (typeof SwaggerUIBundle !== "function") {
    error.textContent = "The API renderer (swagger-ui-dist) is not installed on this server; " +
      "the description itself is at /openapi.json.";
    error.hidden = false;
    return;
  }
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,   // no third-party validator badge
    onComplete: () => document.body.setAttribute("data-api-ready", "1"),
  });
})();
