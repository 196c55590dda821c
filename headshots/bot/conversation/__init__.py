"""The conversation core every chat front end runs on; it imports no chat platform's library.

``texts`` (every sentence), ``style`` and ``kit`` (the questions, as pure functions over JSON),
``state`` (conversations in Redis), ``photos`` (selfie checks and the tally), ``screens`` (what
to show, and the :class:`~.screens.Surface` a front end shows it on), ``flow`` (one person's
conversation) and ``team`` (team mode). ``headshots.bot.telegram``, ``headshots.bot.discord``
and ``headshots.bot.slack`` only translate.
"""
