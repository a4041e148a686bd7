"""The chatbot's tab of the demo page: a conversation, each reply the next turn's context."""

from __future__ import annotations

from apps.chatbot.conversation import Conversation
from apps.common.errors import InputError


def chatbot_tab(page) -> None:
    """Builds the tab inside `page`'s Gradio context (`apps.serve.page`)."""
    import gradio as gr

    chat = gr.Chatbot(label="Conversation (each reply is the next turn's context; it says whether it was "
                            "retrieved from the corpus or generated)")
    message = gr.Textbox(label="Your message", placeholder="hello")
    with gr.Row():
        send = gr.Button("Send", variant="primary")
        reset = gr.Button("Reset the conversation")
    context = gr.State("")

    def respond(text: str, history: list, previous_reply: str):
        if not text.strip():
            raise InputError("Type a message first.")
        conversation = Conversation(page.export(), use_context=True)
        conversation.context = previous_reply
        answer = conversation.reply(text)
        history = list(history or []) + [{"role": "user", "content": text},
                                         {"role": "assistant", "content": f"{answer}  ({conversation.source})"}]
        return history, answer, ""

    for event in (send.click, message.submit):
        event(page.handler(respond), [message, chat, context], [chat, context, message])
    reset.click(lambda: ([], "", ""), None, [chat, context, message])
