"""Negative words for a custom wake word: the ones that sound most like it, chosen automatically.

A wake word trained only against unrelated words fires on every word that shares its sounds ("jar",
"service", "harvest" for "jarvis"). `close_negatives` picks, from a list of common English words, the ones
closest in spelling to the keyword (letter-bigram overlap plus shared start and end, a cheap stand-in for
phonetic distance that works for English spelling), and adds the keyword's own halves ("jar", "vis"), so
the same recipe works for any word without hand-tuning. Words that contain the keyword, or are contained
in it whole, are never chosen (they would be positives).
"""

from __future__ import annotations

import re

#: ~400 common English words of one to four syllables (no proper names)
COMMON_WORDS: tuple[str, ...] = tuple("""
about above across action actor after again against agent airport alarm album alive almost alone along
already also always amazing amount angle animal answer anything apart apartment appear arrive artist
arvo assist attack autumn avenue average avoid awesome baby balance barber bargain barrel basic battery
beauty become before begin behind believe below berry better beyond birthday biscuit blanket border bottle
bottom branch bread breakfast bridge bright brother bucket budget butter cabin calendar camel candle
captain carbon career careful carpet carrot carry carving cartoon castle cattle center certain chair
champion channel charge charity charming chart charter cheap check cherry chicken children circle circus
city classic clever closet coffee collar color comfort common computer concert cookie corner cotton
country courage cousin cover crazy curtain custom danger darling darkness dinner direct doctor dollar
double dragon drawer dream driver early earth effort eleven engine enjoy enough evening every exercise
fabric factor fancy farmer farther father feather fever finger finish flavor flower follow forest
forever forget formal forward fountain friday fridge garage garbage garden gardens garlic gather gentle
giant ginger glasses golden gravity guitar hammer happen harbor hardware harmony harness harvest
having heaven helmet hero hidden history hobby holiday honest honey hundred hunter hurry invest island
jacket jaguar jam jar jargon jarring jealous jelly jersey journey judge juggle juice jump jungle junior
justice kettle kidney kitchen kitten ladder large larva later laundry lava leather lemon level library
light limit lion liquid listen little lizard lobby lovely lucky magic mammal manner marble margin market
marvel master matter meadow medal melon memory mercy message metal middle minute mirror mister modern
moment monday monster motor mountain movie muscle museum music napkin narrow nature nervous never nickel
nobody normal notice number nurse object ocean office often orange orbit oven over paper parcel parent
parking party passive pattern peanut pencil pepper perfect person pillow pilot planet plastic pocket
poem polish potato powder purple purpose puzzle rabbit radio rarely rather raven reason record remote
rescue river robot rocket salad salmon sandal saturday scarlet scissors season second secret service
seven shadow shelter silver simple sister soccer socket soldier sorry spider spirit starve station
sugar summer sunday supper surface sweater system table talent target tavern tennis thirsty thousand
thunder ticket tiger timber toaster today tomato tonight travel travis tunnel turkey twenty under
university very village violin virus visit visitor vitamin voice wallet water weather window winter
wizard wonder worry yellow yesterday zebra zero
""".split())


#: ~260 of the most frequent words of spoken English that `COMMON_WORDS` and the default negatives lack:
#: pronouns, articles, auxiliaries, prepositions, conjunctions, everyday verbs and adverbs. Real talk is about
#: half such words; sentences of content words alone ("garden rocket violin") do not sound like people talking.
FUNCTION_WORDS: tuple[str, ...] = tuple("""
a an the this that these those some any all each both no not
i you he she it we they me him her us them my your his its our their mine yours myself
is am are was were be been being have has had do does did will would shall should can could may might must
get got go going went gone come came make made take took give gave know knew think thought see saw want
need like look say said tell told ask use find put keep let seem feel try leave turn start show hear play
run move live write sit stand pay meet set learn change watch speak read spend grow open walk win
buy wait send stay fall cut reach add pick hold bring talk help mean call work
of to in for on with at by from up into out off down through than as if or and but so because
while when where how why what which who whose then there here now just too only still even back
well way ever soon really actually pretty quite sure yes yeah okay oh
good new last long great own old right big high small next young few bad same able best fine nice
thing things time year day man woman world life hand part place week problem fact point home
room lot night eye job word side kind head house friend hour game line end car one two three four
five six eight nine ten first half more most much many less least other another such
""".split())


def _bigrams(word: str) -> set[str]:
    w = f"^{word}$"
    return {w[i : i + 2] for i in range(len(w) - 1)}


def similarity(a: str, b: str) -> float:
    """Dice coefficient of letter bigrams (with word-boundary marks), plus a bonus for a shared start
    or end of at least two letters: 'jarvis' ~ 'jar', 'harvest', 'service'."""
    x, y = _bigrams(a), _bigrams(b)
    dice = 2 * len(x & y) / (len(x) + len(y))
    bonus = 0.15 * (a[:2] == b[:2]) + 0.15 * (a[-2:] == b[-2:])
    return dice + bonus


def fragments(keyword: str) -> list[str]:
    """For a one-word keyword its first and second half, cut after the first vowel group and the following
    consonant ('jarvis' -> 'jar', 'vis'); for a phrase, each of its words."""
    words = keyword.split()
    if len(words) > 1:
        return words
    m = re.match(r"^([^aeiouy]*[aeiouy]+[^aeiouy]?)(.+)$", keyword)
    if not m or len(m.group(2)) < 2:
        return []
    return [m.group(1), m.group(2)]


def close_negatives(keyword: str, count: int = 20, exclude: tuple[str, ...] = ()) -> list[str]:
    """The keyword's fragments and the `count` common words most similar to it (deterministic order)."""
    key = keyword.replace(" ", "")
    out = [f for f in fragments(keyword) if f != keyword and f not in exclude]
    ranked = sorted(COMMON_WORDS, key=lambda w: (-similarity(key, w), w))
    for w in ranked:
        if len(out) >= count + 2:
            break
        if key in w or w in key or w in out or w in exclude:
            continue
        out.append(w)
    return out
