"""The model's chat template: chat messages in, prompt tokens and extra stop strings out.

The template is the one stored in the GGUF (`tokenizer.chat_template`), rendered the way
llama-cpp-python's `create_chat_completion` renders it, so a templated prompt gives the
same tokens here as there. A model without a template gets llama-cpp-python's own default
chat format, llama-2 (`<s>[INST] <<SYS>>...<</SYS>> ... [/INST]`), and the worker says so
once, when it loads the model.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

Messages = tuple[tuple[str, str], ...]


class ChatTemplate:
    """Formats and tokenizes chats for one loaded `llama_cpp.Llama`."""

    def __init__(self, llama: Any, name: str) -> None:
        from llama_cpp import llama_chat_format

        self.llama = llama
        template = llama.metadata.get("tokenizer.chat_template")
        self.builtin = bool(template)
        if template:
            model = llama._model
            eos, bos = llama.token_eos(), llama.token_bos()
            self._formatter: Any = llama_chat_format.Jinja2ChatFormatter(
                template=template,
                eos_token=model.token_get_text(eos) if eos != -1 else "",
                bos_token=model.token_get_text(bos) if bos != -1 else "",
            )
        else:
            self._formatter = llama_chat_format.format_llama2
            log.warning(
                "%s has no chat template in its GGUF: prompts and chats are formatted with "
                "llama-cpp-python's default chat format, llama-2 ([INST] ... [/INST]); send "
                '"raw": true (or --raw) to pass a prompt verbatim',
                name,
            )

    def tokens(self, messages: Messages) -> tuple[list[int], list[str]]:
        """The prompt tokens and the template's extra stop strings for `messages`."""
        result = self._formatter(messages=[{"role": r, "content": c} for r, c in messages])
        tokens = self.llama.tokenize(
            result.prompt.encode("utf-8"), add_bos=not result.added_special, special=True
        )
        stop = result.stop if isinstance(result.stop, list) else [result.stop] * bool(result.stop)
        return list(tokens), [s for s in stop if s]
