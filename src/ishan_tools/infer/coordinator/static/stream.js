// Reading the OpenAI-compatible API: error bodies, and a streamed chat completion's chunks.

/** An API answer that is not a success: the HTTP status and the server's own message. */
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.name = "ApiError";
    this.status = status;
  }
}

/** The ApiError of a non-2xx response; both error shapes (OpenAI's and the coordinator's). */
export async function errorOf(response) {
  let message = `${response.status} ${response.statusText}`.trim();
  try {
    const error = (await response.json()).error;
    message = typeof error === "string" ? error : (error && error.message) || message;
  } catch {
    // not JSON: keep the status line
  }
  return new ApiError(response.status, message);
}

/** The JSON chunks of a server-sent-event stream, up to `data: [DONE]` or the end. */
export async function* chunks(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value.replace(/\r\n?/g, "\n");
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const data = buffer
          .slice(0, cut)
          .split("\n")
          .filter((line) => line.startsWith("data:"))
          .map((line) => line.slice(5).trimStart())
          .join("\n");
        buffer = buffer.slice(cut + 2);
        if (data === "[DONE]") return;
        if (data) yield JSON.parse(data);
      }
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}
