"""The conversation core both chat front ends run on; it imports neither telegram nor discord.

``texts`` (every sentence), ``style`` and ``kit`` (the questions, as pure functions over JSON),
``state`` (conversations in Redis), ``photos`` (selfie checks and the tally), ``screens`` (what
to show, and the :class:`~.screens.Surface` a front end shows it on), ``flow`` (one person's
conversation) and ``team`` (team mode). ``headshots.bot.telegram`` and ``headshots.bot.discord``
only translate.
"""
