"""A conversation: one answer per message, in the voice of the persona the thread is with,
with the thread's history and what the channel remembers."""

from __future__ import annotations

from engine.context import clip_for_model, estimate_tokens, memory_text
from engine.flows import FlowPart, Job, recalled_summary
from engine.memory.records import ThreadKind, ThreadRecord, TurnRecord, TurnRole
from engine.models import ReplyKind
from engine.personas import Persona
from engine.ports import ChatMessage
from engine.turns import conversation_turn


class ConversationFlow(FlowPart):

    async def converse(self, job: Job, rec: ThreadRecord | None, speaker: Persona | None) -> ThreadRecord:
        """Before the model call (`flows.starting`) and after it (`flows.finishing`), a few
        mentions at a time: under a burst each one gets its question to the model, and its answer
        posted, in a few milliseconds, instead of every mention taking one step per loop turn and
        all of them finishing together, late (see `Flows.starting`)."""
        flows = self.flows
        async with flows.starting:
            rec, persona, turns, turn, recalled = await self._prepare(job, rec, speaker)
        if turn is None:
            outcome = await conversation_turn(
                self.provider, persona, question=job.text,
                memory=memory_text(recalled, self.config.context_tokens // 4),
                history=self._chat_history([x for x in turns if x.task_id != job.task_id], self.config.context_tokens // 2),
            )
        async with flows.finishing:
            if turn is None:
                turn = await self.memory.add_turn(flows.turn_record(job, rec, persona, outcome, route={
                    "mode": "conversation", "persona": persona.name, "reasons": [self._why(job, persona, rec)],
                    "recalled": [recalled_summary(r) for r in recalled],
                }))
                rec.turn_count += 1
                rec = await self.memory.update_thread(rec)
                job.thread = rec
            first = not any(x.role == TurnRole.PERSONA and x.seq < turn.seq for x in turns)
            await flows.post(job, flows.reply(job, ReplyKind.ANSWER, persona, turn.text, key=f"turn:{rec.id}:{turn.seq}",
                                              thread=rec.thread, first_in_thread=first))
        return rec

    async def _prepare(self, job: Job, rec: ThreadRecord | None, speaker: Persona | None):
        """The thread, who speaks, its turns so far, the turn already made (a resumed task), and
        what the channel remembers; the person's turn stored and her placeholder shown."""
        t, flows = job.task, self.flows
        if rec is None:
            route = self.personas.route_by_domain(job.text)
            lead = speaker or self.personas[route.persona]
            thread_id = await flows.thread_id(job, ThreadKind.CONVERSATION)
            earlier = await self.memory.get_thread(thread_id) if job.resumed else None
            rec = earlier or await self.memory.create_thread(
                ThreadRecord(
                    id=thread_id, kind=ThreadKind.CONVERSATION, platform=t.platform, workspace=t.workspace,
                    channel=t.channel, thread=t.thread or t.message_id or t.event_id, title=job.text[:200], lead=lead.name,
                )
            )
        job.thread = rec
        persona = speaker or self.personas.get(rec.lead) or self.personas[self.personas.default]
        job.persona = persona
        job.step = 1
        turns = await self.memory.turns(rec.id)
        await flows.human_turn(job, rec, t.text.strip())
        turn = await job.earlier_turn(self.memory, 1)
        recalled = []
        if turn is None:
            await flows.working(job, persona, rec.thread)
            recalled = await flows.recall(job, rec, job.text)
        return rec, persona, turns, turn, recalled

    def _chat_history(self, turns: list[TurnRecord], budget: int) -> list[ChatMessage]:
        messages: list[ChatMessage] = []
        used = 0
        for turn in reversed(turns):
            content = turn.text if turn.role == TurnRole.HUMAN else f"{turn.author.capitalize()}: {turn.text}"
            content = clip_for_model(content, budget * 2)[0]
            used += estimate_tokens(content)
            if used > budget and messages:
                break
            messages.append(ChatMessage(role="user" if turn.role == TurnRole.HUMAN else "assistant", content=content))
        messages.reverse()
        while messages and messages[0].role == "assistant":  # models want to start with the user
            messages.pop(0)
        return messages

    def _why(self, job: Job, persona: Persona, rec: ThreadRecord) -> str:
        if job.task.persona or self.personas.split_addressee(job.task.text)[0]:
            return f"{persona.display_name} was named"
        if rec.lead == persona.name:
            route = self.personas.route_by_domain(rec.title)  # deterministic: the same as at the start
            how = route.reason if route.persona == persona.name else "she was named when it began"
            return f"{persona.display_name} leads this thread ({how})"
        return f"{persona.display_name} was replied to"
