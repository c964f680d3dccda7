// Swagger UI for /docs, from the assets linkprobe ships (no CDN; no inline script for the CSP).
declare const SwaggerUIBundle: (config: Record<string, unknown>) => unknown;

SwaggerUIBundle({ url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true });
