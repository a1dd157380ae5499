/**
 * strophe.js's Node entry installs DOMParser, XMLSerializer and document
 * (@xmldom/xmldom) but not XMLHttpRequest, which its BOSH transport uses.
 * NodeXhr is the smallest XMLHttpRequest strophe.js needs, over Node's
 * fetch (keep-alive by default). StanzaJS uses fetch itself.
 */
interface DomParserLike { parseFromString(text: string, type: string): unknown }

/** The XMLHttpRequest surface strophe.js's BOSH transport uses, over fetch. */
export class NodeXhr {
  readyState = 0;
  status = 0;
  responseText = '';
  responseXML: unknown = null;
  withCredentials = false;
  onreadystatechange: (() => void) | null = null;
  #method = 'POST';
  #url = '';
  #headers: Record<string, string> = {};
  #responseHeaders = '';
  readonly #abort = new AbortController();

  overrideMimeType(): void {}
  open(method: string, url: string): void {
    this.#method = method;
    this.#url = url;
    this.readyState = 1;
  }
  setRequestHeader(name: string, value: string): void { this.#headers[name] = value; }
  getAllResponseHeaders(): string { return this.#responseHeaders; }
  abort(): void { this.#abort.abort(); }

  send(body?: string): void {
    fetch(this.#url, { method: this.#method, headers: this.#headers, body, signal: this.#abort.signal })
      .then(async (res) => {
        this.responseText = await res.text();
        this.status = res.status;
        this.#responseHeaders = [...res.headers].map(([k, v]) => `${k}: ${v}`).join('\r\n');
        const Parser = (globalThis as unknown as { DOMParser: new () => DomParserLike }).DOMParser;
        this.responseXML = new Parser().parseFromString(this.responseText, 'text/xml');
      })
      .catch(() => { this.status = 0; })
      .finally(() => {
        if (this.#abort.signal.aborted) return;
        this.readyState = 4;
        this.onreadystatechange?.();
      });
  }
}

/** Makes NodeXhr the global XMLHttpRequest (for strophe.js over BOSH). */
export function installNodeXhr(): void {
  (globalThis as { XMLHttpRequest?: unknown }).XMLHttpRequest = NodeXhr;
}
