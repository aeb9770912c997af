"""The local Discord (tests/servers/discord_api.py) speaks what discord.py's real client expects:
login, gateway READY/GUILD_CREATE, dispatched events, messages, webhooks, threads, interactions,
resume after a dropped connection, 429s and a refused token."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import discord
import pytest
import pytest_asyncio
from discord import app_commands

from tests.servers.discord_api import (
    DiscordServer,
    connected,
    local_discord,
)
from tests.servers.discord_payloads import GUILD_MEMBERS

pytest_plugins = ["tests.servers.fixtures"]


class Recorder(discord.Client):
    """A discord.Client that keeps what it receives and waits for it."""

    def __init__(self, **kw: Any):
        intents = kw.pop("intents", None)
        if intents is None:
            intents = discord.Intents.default()
            intents.message_content = True
        super().__init__(intents=intents, **kw)
        self.tree = app_commands.CommandTree(self)
        self.received: list[discord.Message] = []
        self.events: list[str] = []

    async def on_message(self, message: discord.Message) -> None:
        self.received.append(message)

    async def on_resumed(self) -> None:
        self.events.append("resumed")

    async def on_thread_create(self, thread: discord.Thread) -> None:
        self.events.append(f"thread_create:{thread.id}")


async def wait_until(predicate, timeout: float = 5.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while not (result := predicate()):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.01)
    return result


@pytest_asyncio.fixture
async def server(discord_server: DiscordServer) -> DiscordServer:
    return discord_server


@pytest_asyncio.fixture
async def client(server: DiscordServer) -> AsyncIterator[Recorder]:
    async with connected(Recorder(), server) as c:
        yield c  # type: ignore[misc]


async def test_login_connect_ready_and_guild(server: DiscordServer, client: Recorder) -> None:
    assert client.user is not None and client.user.id == server.bot_id
    assert client.application_id == server.application_id
    guild = client.get_guild(server.guild_id)
    assert guild is not None and not guild.unavailable
    general = guild.get_channel(server.general_id)
    assert isinstance(general, discord.TextChannel) and general.name == "general"
    me = guild.me
    assert me is not None and server.bot_role_id in [r.id for r in me.roles]
    perms = general.permissions_for(me)
    assert perms.manage_webhooks and perms.send_messages and perms.create_public_threads
    assert server.gateway.intents == client.intents.value
    assert server.of("GET /users/@me") and server.gateway.heartbeats >= 1


async def test_message_create_reaches_on_message(server: DiscordServer, client: Recorder) -> None:
    sent = await server.mention("sophia why is it slow?", mention_roles=[server.bot_role_id])
    got = await wait_until(lambda: [m for m in client.received if m.id == int(sent["id"])])
    message = got[0]
    assert message.content == f"<@{server.bot_id}> sophia why is it slow?"
    assert client.user in message.mentions
    assert [r.id for r in message.role_mentions] == [server.bot_role_id]
    assert isinstance(message.author, discord.Member) and message.author.name == "alice"
    assert message.channel.id == server.general_id and message.guild and message.guild.id == server.guild_id

    reply = await server.user_message("and this?", reply_to=int(sent["id"]))
    got = await wait_until(lambda: [m for m in client.received if m.id == int(reply["id"])])
    assert got[0].reference is not None and got[0].reference.message_id == int(sent["id"])

    hook = await server.webhook_message("from a hook")
    bot = await server.bot_message("from a bot")
    dm = await server.dm("hello in private")
    ids = {int(hook["id"]), int(bot["id"]), int(dm["id"])}
    await wait_until(lambda: len({m.id for m in client.received} & ids) == 3)
    got = {m.id: m for m in client.received}
    assert got[int(hook["id"])].webhook_id is not None and got[int(hook["id"])].author.bot
    assert got[int(bot["id"])].author.bot and got[int(bot["id"])].webhook_id is None
    assert isinstance(got[int(dm["id"])].channel, discord.DMChannel) and got[int(dm["id"])].guild is None


async def test_send_and_edit_a_message_as_the_bot(server: DiscordServer, client: Recorder) -> None:
    channel = client.get_channel(server.general_id)
    sent = await channel.send("hello", allowed_mentions=discord.AllowedMentions.none())
    assert server.channel_posts(server.general_id)[-1].json["content"] == "hello"
    assert server.channel_posts()[-1].json["allowed_mentions"] == {"parse": []}
    # Discord echoes the bot's own message through the gateway.
    await wait_until(lambda: [m for m in client.received if m.id == sent.id])
    await sent.edit(content="hello again")
    assert server.messages[sent.id]["content"] == "hello again"
    history = [m async for m in channel.history(limit=10)]
    assert history[0].id == sent.id
    # With a file discord.py sends multipart; the recorded json is its payload_json.
    await channel.send("with a file", file=discord.File(io.BytesIO(b"log line"), filename="log.txt"))
    assert server.channel_posts()[-1].json["content"] == "with a file"
    older = [m async for m in channel.history(limit=1, before=discord.Object(sent.id))]
    assert older == []


async def test_webhook_send_with_identity_thread_and_allowed_mentions(server: DiscordServer, client: Recorder) -> None:
    channel = client.get_channel(server.general_id)
    root = await channel.send("root")
    thread = await root.create_thread(name="an investigation")
    assert thread.id == root.id and thread.parent_id == server.general_id
    webhook = await channel.create_webhook(name="Orchestra")
    assert webhook.user == client.user
    assert [w.id for w in await channel.webhooks()] == [webhook.id]
    asker = server.alice["id"]
    posted = await webhook.send(
        f"<@{asker}> @everyone look", username="Sophia", avatar_url="https://example.test/sophia.png",
        thread=discord.Object(thread.id), wait=True,
        embeds=[discord.Embed(description="finding", colour=0x3498DB).set_footer(text="turn:x:1")],
        allowed_mentions=discord.AllowedMentions(everyone=False, roles=False, users=[discord.Object(int(asker))],
                                                 replied_user=False),
    )
    call = server.webhook_executions(webhook.id)[-1]
    assert call.query["wait"] in ("1", "true") and call.query["thread_id"] == str(thread.id)
    assert call.json["username"] == "Sophia" and call.json["avatar_url"] == "https://example.test/sophia.png"
    assert call.json["allowed_mentions"]["parse"] == [] and call.json["allowed_mentions"]["users"] == [int(asker)]
    assert call.json["embeds"][0]["footer"]["text"] == "turn:x:1"
    assert posted.webhook_id == webhook.id and posted.author.name == "Sophia" and posted.channel.id == thread.id
    assert server.posted_as(posted.id) == {"username": "Sophia", "avatar_url": "https://example.test/sophia.png"}
    assert server.messages[posted.id]["channel_id"] == str(thread.id)
    edited = await webhook.edit_message(posted.id, content="edited", thread=discord.Object(thread.id))
    assert edited.content == "edited"
    assert server.of("PATCH /webhooks/{webhook_id}/{webhook_token}/messages/{message_id}")[-1].query["thread_id"] == str(thread.id)
    assert server.posts_for(server.messages[root.id]) == server.of("POST /channels/{channel_id}/messages")[-1:] + [call]
    # The webhook's own post comes back through the gateway, as on Discord.
    await wait_until(lambda: [m for m in client.received if m.id == posted.id])

    class Buttons(discord.ui.View):
        def __init__(self) -> None:
            super().__init__(timeout=None)
            self.add_item(discord.ui.Button(label="Challenge", custom_id="orchestra:challenge:inv-1"))

    with_buttons = await webhook.send("choose", username="Karen", view=Buttons(), wait=True)
    assert server.messages[with_buttons.id]["components"][0]["components"][0]["custom_id"] == "orchestra:challenge:inv-1"

    server.delete_message(posted.id)  # someone removed the post
    with pytest.raises(discord.NotFound) as gone:
        await webhook.edit_message(posted.id, content="again", thread=discord.Object(thread.id))
    assert gone.value.code == 10008
    await webhook.delete_message(with_buttons.id)
    assert with_buttons.id not in server.messages


async def test_failure_switches_raise_discord_errors_with_codes(server: DiscordServer, client: Recorder) -> None:
    channel = client.get_channel(server.general_id)
    root = await channel.send("root")
    await root.create_thread(name="t")
    with pytest.raises(discord.HTTPException) as exists:
        await root.create_thread(name="t again")
    assert exists.value.code == 160004

    webhook = await channel.create_webhook(name="Orchestra")
    server.delete_webhook(webhook.id)
    with pytest.raises(discord.NotFound) as gone:
        await webhook.send("x", wait=True)
    assert gone.value.code == 10015

    server.deny_manage_webhooks(server.random_id)
    with pytest.raises(discord.Forbidden) as denied:
        await client.get_channel(server.random_id).create_webhook(name="Orchestra")
    assert denied.value.code == 50013
    await wait_until(lambda: not client.get_channel(server.random_id).permissions_for(
        client.get_guild(server.guild_id).me).manage_webhooks)

    server.archive_thread(root.id)
    # discord.py drops an archived thread from its cache on THREAD_UPDATE; fetch it instead.
    await wait_until(lambda: client.get_channel(root.id) is None)
    thread = await client.fetch_channel(root.id)
    assert isinstance(thread, discord.Thread) and thread.archived
    with pytest.raises(discord.HTTPException) as archived:
        await thread.send("late")
    assert archived.value.code == 50083
    await thread.edit(archived=False)
    await thread.send("after unarchiving")
    assert server.messages_in(root.id)[-1]["content"] == "after unarchiving"


async def test_slash_command_defer_then_followup(server: DiscordServer, client: Recorder) -> None:
    seen: list[str] = []

    @client.tree.command(name="investigate", description="Open an investigation")
    async def investigate(interaction: discord.Interaction, problem: str, persona: str = "auto") -> None:
        seen.append(f"{persona}:{problem}")
        await interaction.response.defer(thinking=True)
        await interaction.followup.send("on it", allowed_mentions=discord.AllowedMentions.none())

    @investigate.autocomplete("persona")
    async def personas(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        return [app_commands.Choice(name=n, value=n) for n in ("cherry", "sophia") if n.startswith(current)]

    guild = discord.Object(server.guild_id)
    client.tree.copy_global_to(guild=guild)
    await client.tree.sync(guild=guild)
    synced = server.of("PUT /applications/{application_id}/guilds/{guild_id}/commands")[-1].json
    assert [c["name"] for c in synced] == ["investigate"]
    with pytest.raises(discord.Forbidden) as elsewhere:
        await client.tree.sync(guild=discord.Object(12345))  # a guild the bot was never invited to
    assert elsewhere.value.code == 50001

    run = await server.slash_command("investigate", {"problem": "slow checkout", "persona": "sophia"})
    await server.wait_for(lambda: len(server.callbacks_for(run)) == 1 and server.of("POST /webhooks/{webhook_id}/{webhook_token}"))
    assert seen == ["sophia:slow checkout"]
    assert [c.type for c in server.callbacks_for(run)] == [5]
    assert 0 <= server.callbacks_for(run)[0].latency < 3
    followup = server.of("POST /webhooks/{webhook_id}/{webhook_token}")[-1]
    assert followup.path.split("/")[2] == str(server.application_id) and followup.json["content"] == "on it"
    assert server.messages_in(server.general_id)[-1]["content"] == "on it"  # replaced the "thinking" message

    complete = await server.slash_command("investigate", {"problem": "x", "persona": "so"}, focused="persona")
    await server.wait_for(lambda: server.callbacks_for(complete))
    answer = server.callbacks_for(complete)[0]
    assert answer.type == 8 and answer.data == {"choices": [{"name": "sophia", "value": "sophia"}]}


async def test_button_click_on_a_message(server: DiscordServer, client: Recorder) -> None:
    clicks: list[tuple[str, int]] = []

    class Buttons(discord.ui.View):
        def __init__(self) -> None:
            super().__init__(timeout=None)

        @discord.ui.button(label="Challenge", custom_id="orchestra:challenge:inv-1")
        async def challenge(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
            clicks.append((button.custom_id or "", interaction.message.id if interaction.message else 0))
            await interaction.response.edit_message(content="taken", view=None)

    client.add_view(Buttons())
    sent = await client.get_channel(server.general_id).send("finding", view=Buttons())
    assert server.messages[sent.id]["components"][0]["components"][0]["custom_id"] == "orchestra:challenge:inv-1"
    click = await server.click(sent.id, "orchestra:challenge:inv-1", user=server.bob)
    await server.wait_for(lambda: server.callbacks_for(click))
    assert clicks == [("orchestra:challenge:inv-1", sent.id)]
    assert server.callbacks_for(click)[0].type == 7
    assert server.messages[sent.id]["content"] == "taken" and server.messages[sent.id]["components"] == []


async def test_resume_after_a_dropped_connection_replays_missed_events(server: DiscordServer, client: Recorder) -> None:
    await server.gateway.drop()
    missed = await server.user_message("sent while disconnected")
    await wait_until(lambda: "resumed" in client.events)
    assert server.gateway.resumes and len(server.gateway.identifies) == 1
    await wait_until(lambda: [m for m in client.received if m.id == int(missed["id"])])
    # A duplicate delivery of the same event after the resume reaches the client again.
    await server.gateway.redeliver(server.gateway.last_seq("MESSAGE_CREATE"))
    await wait_until(lambda: len([m for m in client.received if m.id == int(missed["id"])]) == 2)
    # Op 7 RECONNECT: discord.py closes and resumes again.
    await server.gateway.request_reconnect()
    await wait_until(lambda: client.events.count("resumed") == 2)
    assert len(server.gateway.resumes) == 2 and len(server.gateway.identifies) == 1


async def test_thread_create_is_dispatched(server: DiscordServer, client: Recorder) -> None:
    thread = await server.thread_create(name="people talk")
    await wait_until(lambda: f"thread_create:{thread['id']}" in client.events)
    inside = await server.user_message("in the thread", channel_id=int(thread["id"]))
    got = await wait_until(lambda: [m for m in client.received if m.id == int(inside["id"])])
    assert isinstance(got[0].channel, discord.Thread) and got[0].channel.parent_id == server.general_id


async def test_rate_limited_route_is_retried_by_discord_py(server: DiscordServer, client: Recorder) -> None:
    server.rate_limit("POST /channels/{channel_id}/messages", times=2, retry_after=0.05)
    message = await client.get_channel(server.general_id).send("patient")
    statuses = [r.status for r in server.of("POST /channels/{channel_id}/messages", ok_only=False)]
    assert statuses == [429, 429, 200]
    assert server.messages[message.id]["content"] == "patient"
    assert server.of("POST /channels/{channel_id}/messages", ok_only=False)[0].response == {
        "message": "You are being rate limited.", "retry_after": 0.05, "global": False}

    webhook = await client.get_channel(server.general_id).create_webhook(name="Orchestra")
    server.rate_limit("POST /webhooks/{webhook_id}/{webhook_token}", times=1, retry_after=0.05, is_global=True)
    sent = await webhook.send("through the hook", wait=True)
    assert [r.status for r in server.of("POST /webhooks/{webhook_id}/{webhook_token}", ok_only=False)] == [429, 200]
    assert server.messages[sent.id]["webhook_id"] == str(webhook.id)


async def test_slow_and_failing_routes(server: DiscordServer, client: Recorder) -> None:
    server.fail("POST /channels/{channel_id}/typing", 500, 0, "500: Internal Server Error", times=None)
    server.fail(f"GET /channels/{server.random_id}", 404, 10003, "Unknown Channel")
    with pytest.raises(discord.NotFound) as e:
        await client.fetch_channel(server.random_id)
    assert e.value.code == 10003
    server.slow("GET /guilds/{guild_id}/members/{user_id}", 0.2)
    started = asyncio.get_running_loop().time()
    member = await client.get_guild(server.guild_id).fetch_member(int(server.bob["id"]))
    assert member.get_role(server.admin_role_id) is not None
    assert asyncio.get_running_loop().time() - started >= 0.2


async def test_bad_token_gives_login_failure(server: DiscordServer) -> None:
    client = Recorder()
    with pytest.raises(discord.LoginFailure):
        await client.login("not-the-token")
    await client.close()
    assert server.of("GET /users/@me", ok_only=False)[-1].status == 401


async def test_privileged_intent_refused_with_4014() -> None:
    async with local_discord(heartbeat_interval=200, allowed_intents=0) as server:
        client = Recorder()  # asks for message_content, which this portal has not switched on
        with pytest.raises(discord.PrivilegedIntentsRequired):
            await asyncio.wait_for(client.start(server.token), 5)
        await client.close()
        assert server.gateway.close_codes == [4014]


async def test_gateway_refuses_a_bad_token_with_4004(server: DiscordServer) -> None:
    client = Recorder()
    await client.login(server.token)
    client.http.token = "revoked-since-login"  # REST accepted the token, the IDENTIFY does not
    with pytest.raises(discord.ConnectionClosed) as closed:
        await asyncio.wait_for(client.connect(reconnect=False), 5)
    await client.close()
    assert closed.value.code == 4004 and server.gateway.close_codes == [4004]
    assert server.gateway.intents is not None and not server.gateway.intents & GUILD_MEMBERS


async def test_dm_thread_without_message_and_dm_command(server: DiscordServer, client: Recorder) -> None:
    alice = await client.fetch_user(int(server.alice["id"]))
    sent = await alice.send("hello in private")
    dm = server.dm_with(server.alice)
    assert server.messages[sent.id]["channel_id"] == dm["id"]
    thread = await client.get_channel(server.general_id).create_thread(name="loose", type=discord.ChannelType.public_thread)
    assert thread.parent_id == server.general_id and server.channels[thread.id]["name"] == "loose"

    seen: list[tuple[int | None, int]] = []

    @client.tree.command(name="memory", description="What this channel remembers")
    async def memory(interaction: discord.Interaction) -> None:
        seen.append((interaction.guild_id, interaction.channel_id or 0))
        await interaction.response.send_message("nothing yet", ephemeral=True)

    run = await server.slash_command("memory", channel_id=int(dm["id"]))
    await server.wait_for(lambda: server.callbacks_for(run))
    assert seen == [(None, int(dm["id"]))]
    assert server.callbacks_for(run)[0].data["flags"] == 64


async def test_interaction_reply_then_edit_original(server: DiscordServer, client: Recorder) -> None:
    @client.tree.command(name="personas", description="List personas")
    async def personas(interaction: discord.Interaction) -> None:
        await interaction.response.send_message("Cherry, Sophia, Karen")
        await interaction.edit_original_response(content="Cherry, Sophia and Karen")

    run = await server.slash_command("personas")
    await server.wait_for(lambda: server.of("PATCH /webhooks/{webhook_id}/{webhook_token}/messages/{message_id}"))
    assert server.callback_types() == [4]
    assert server.callbacks_for(run)[0].data["content"] == "Cherry, Sophia, Karen"
    assert server.messages_in(server.general_id)[-1]["content"] == "Cherry, Sophia and Karen"
    # A second acknowledgement is refused as Discord refuses it.
    url = f"{server.api_url}/interactions/{run['id']}/{run['token']}/callback"
    async with aiohttp.ClientSession() as http, http.post(url, json={"type": 5}) as r:
        assert r.status == 400 and (await r.json())["code"] == 40060


async def test_bodies_past_discord_limits_are_refused_as_discord_does(server: DiscordServer, client: Recorder) -> None:
    channel = client.get_channel(server.general_id)
    with pytest.raises(discord.HTTPException) as long_content:
        await channel.send("x" * 2001)
    assert long_content.value.code == 50035 and "2000 or fewer" in long_content.value.text
    with pytest.raises(discord.HTTPException) as big_embeds:
        await channel.send(embeds=[discord.Embed(description="y" * 4000), discord.Embed(description="z" * 2001)])
    assert big_embeds.value.code == 50035 and "6000" in big_embeds.value.text
    await channel.send("x" * 2000, embeds=[discord.Embed(description="y" * 4096)])  # at the limits: fine
    webhook = await channel.create_webhook(name="Orchestra")
    with pytest.raises(discord.HTTPException) as bad_name:
        await webhook.send("hi", username="Discord Helper", wait=True)
    assert bad_name.value.code == 50035
    root = await channel.send("root")
    with pytest.raises(discord.HTTPException) as long_thread_name:
        await root.create_thread(name="n" * 101)
    assert long_thread_name.value.code == 50035
    assert server.of("POST /channels/{channel_id}/messages", ok_only=False)[0].status == 400


async def test_without_message_content_only_mentions_and_dms_carry_text(server: DiscordServer) -> None:
    intents = discord.Intents.default()
    intents.message_content = False
    async with connected(Recorder(intents=intents), server) as client:
        plain = await server.user_message("no mention here")
        mention = await server.mention("sophia help")
        dm = await server.dm("private words")
        ids = {int(plain["id"]), int(mention["id"]), int(dm["id"])}
        await wait_until(lambda: len({m.id for m in client.received} & ids) == 3)
        got = {m.id: m for m in client.received}
        assert got[int(plain["id"])].content == ""
        assert got[int(mention["id"])].content == f"<@{server.bot_id}> sophia help"
        assert got[int(dm["id"])].content == "private words"


async def test_thread_without_message_leaves_a_system_message(server: DiscordServer, client: Recorder) -> None:
    thread = await client.get_channel(server.general_id).create_thread(name="loose", type=discord.ChannelType.public_thread)
    notice = await wait_until(lambda: [m for m in client.received if m.type is discord.MessageType.thread_created])
    assert notice[0].channel.id == server.general_id and notice[0].content == "loose"
    assert notice[0].reference is not None and notice[0].reference.channel_id == thread.id
    assert notice[0].is_system()


async def test_member_permissions_in_interactions_follow_roles(server: DiscordServer, client: Recorder) -> None:
    perms: dict[str, tuple[bool, list[str]]] = {}

    @client.tree.command(name="forget", description="Forget this channel")
    async def forget(interaction: discord.Interaction) -> None:
        member = interaction.user
        assert isinstance(member, discord.Member)
        perms[member.name] = (interaction.permissions.manage_guild, [r.name for r in member.roles[1:]])
        await interaction.response.send_message("ok", ephemeral=True)

    helpers = server.add_role("Helpers")
    server.give_role(server.alice, helpers)
    for user in (server.alice, server.bob, server.carol, server.owner):
        run = await server.slash_command("forget", user=user)
        await server.wait_for(lambda run=run: server.callbacks_for(run))
    assert perms == {"alice": (False, ["Helpers"]), "bob": (False, ["Orchestra Admins"]),
                     "carol": (True, ["Managers"]), "olivia": (True, [])}


async def test_late_or_deferred_component_answers(server: DiscordServer, client: Recorder) -> None:
    outcomes: list[str] = []

    class Slow(discord.ui.View):
        def __init__(self) -> None:
            super().__init__(timeout=None)

        @discord.ui.button(label="Plan", custom_id="orchestra:plan:inv-2")
        async def plan(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
            try:
                await interaction.response.defer()
                outcomes.append("deferred")
            except discord.NotFound as e:
                outcomes.append(f"late:{e.code}")

    client.add_view(Slow())
    sent = await client.get_channel(server.general_id).send("plan?", view=Slow())
    await server.click(sent.id, "orchestra:plan:inv-2")
    await wait_until(lambda: outcomes)
    server.interaction_deadline = 0.0  # every answer now comes too late
    await server.click(sent.id, "orchestra:plan:inv-2")
    await wait_until(lambda: len(outcomes) == 2)
    assert outcomes == ["deferred", "late:10062"]
    assert server.callback_types() == [6]
