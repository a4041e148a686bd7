"""The synthetic English -> Spanish corpus of `--data sample`.

A small grammar generates sentence pairs with Spanish agreement: determiners
and adjectives agree with the noun's gender and number (adjectives follow the
noun in Spanish), verbs are conjugated for person and number (regular -ar,
-er and -ir verbs, a few irregular ones, "ser" and "estar"), and negation moves "no" before the verb. Objects
are inanimate, so the personal "a" never arises. About 350 distinct words;
the corpus is synthetic and deterministic for a seed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

# (English singular, English plural, Spanish singular, Spanish plural, gender)
_ANIMATE = [
    ("dog", "dogs", "perro", "perros", "m"), ("cat", "cats", "gato", "gatos", "m"),
    ("boy", "boys", "niño", "niños", "m"), ("girl", "girls", "niña", "niñas", "f"),
    ("man", "men", "hombre", "hombres", "m"), ("woman", "women", "mujer", "mujeres", "f"),
    ("teacher", "teachers", "maestro", "maestros", "m"),
    ("doctor", "doctors", "médico", "médicos", "m"),
    ("friend", "friends", "amigo", "amigos", "m"), ("student", "students", "alumno", "alumnos", "m"),
    ("brother", "brothers", "hermano", "hermanos", "m"),
    ("sister", "sisters", "hermana", "hermanas", "f"),
    ("neighbor", "neighbors", "vecino", "vecinos", "m"),
    ("grandmother", "grandmothers", "abuela", "abuelas", "f"),
    ("king", "kings", "rey", "reyes", "m"), ("queen", "queens", "reina", "reinas", "f"),
    ("bird", "birds", "pájaro", "pájaros", "m"), ("horse", "horses", "caballo", "caballos", "m"),
    ("cow", "cows", "vaca", "vacas", "f"), ("child", "children", "niño", "niños", "m"),
]
_THINGS = [
    ("book", "books", "libro", "libros", "m"), ("house", "houses", "casa", "casas", "f"),
    ("car", "cars", "coche", "coches", "m"), ("table", "tables", "mesa", "mesas", "f"),
    ("chair", "chairs", "silla", "sillas", "f"), ("window", "windows", "ventana", "ventanas", "f"),
    ("door", "doors", "puerta", "puertas", "f"), ("letter", "letters", "carta", "cartas", "f"),
    ("apple", "apples", "manzana", "manzanas", "f"), ("bread", "breads", "pan", "panes", "m"),
    ("cake", "cakes", "pastel", "pasteles", "m"), ("shirt", "shirts", "camisa", "camisas", "f"),
    ("shoe", "shoes", "zapato", "zapatos", "m"), ("hat", "hats", "sombrero", "sombreros", "m"),
    ("song", "songs", "canción", "canciones", "f"), ("picture", "pictures", "cuadro", "cuadros", "m"),
    ("cup", "cups", "taza", "tazas", "f"), ("glass", "glasses", "vaso", "vasos", "m"),
    ("key", "keys", "llave", "llaves", "f"), ("box", "boxes", "caja", "cajas", "f"),
    ("bag", "bags", "bolsa", "bolsas", "f"), ("pen", "pens", "bolígrafo", "bolígrafos", "m"),
    ("newspaper", "newspapers", "periódico", "periódicos", "m"),
    ("computer", "computers", "ordenador", "ordenadores", "m"),
    ("phone", "phones", "teléfono", "teléfonos", "m"), ("flower", "flowers", "flor", "flores", "f"),
    ("bicycle", "bicycles", "bicicleta", "bicicletas", "f"),
    ("wall", "walls", "pared", "paredes", "f"), ("bottle", "bottles", "botella", "botellas", "f"),
    ("ball", "balls", "pelota", "pelotas", "f"), ("map", "maps", "mapa", "mapas", "m"),
    ("clock", "clocks", "reloj", "relojes", "m"), ("lamp", "lamps", "lámpara", "lámparas", "f"),
    ("story", "stories", "historia", "historias", "f"), ("ticket", "tickets", "billete", "billetes", "m"),
    ("dress", "dresses", "vestido", "vestidos", "m"), ("plate", "plates", "plato", "platos", "m"),
    ("orange", "oranges", "naranja", "naranjas", "f"), ("egg", "eggs", "huevo", "huevos", "m"),
    ("toy", "toys", "juguete", "juguetes", "m"),
]
_PLACES = [
    ("park", "parque", "m"), ("kitchen", "cocina", "f"), ("garden", "jardín", "m"),
    ("school", "escuela", "f"), ("city", "ciudad", "f"), ("street", "calle", "f"),
    ("market", "mercado", "m"), ("library", "biblioteca", "f"), ("office", "oficina", "f"),
    ("beach", "playa", "f"), ("village", "pueblo", "m"), ("hospital", "hospital", "m"),
    ("room", "habitación", "f"), ("station", "estación", "f"), ("forest", "bosque", "m"),
]
# English, Spanish masculine singular; the other forms follow Spanish rules.
_ADJECTIVES = [
    ("big", "grande"), ("small", "pequeño"), ("red", "rojo"), ("white", "blanco"),
    ("black", "negro"), ("new", "nuevo"), ("old", "viejo"), ("beautiful", "bonito"),
    ("ugly", "feo"), ("tall", "alto"), ("short", "bajo"), ("happy", "contento"),
    ("sad", "triste"), ("clean", "limpio"), ("dirty", "sucio"), ("cheap", "barato"),
    ("expensive", "caro"), ("green", "verde"), ("blue", "azul"), ("yellow", "amarillo"),
    ("modern", "moderno"), ("strong", "fuerte"), ("young", "joven"), ("quiet", "tranquilo"),
    ("busy", "ocupado"), ("tired", "cansado"), ("famous", "famoso"), ("funny", "gracioso"),
    ("kind", "amable"), ("intelligent", "inteligente"), ("poor", "pobre"), ("rich", "rico"),
]
_ANIMATE_ADJECTIVES = {
    "happy", "sad", "tall", "short", "young", "old", "strong", "tired", "busy", "famous",
    "funny", "kind", "intelligent", "poor", "rich", "quiet", "beautiful", "ugly", "small", "big",
}
# English base form, English third person singular, Spanish infinitive.
_TRANSITIVE = [
    ("buy", "buys", "comprar"), ("watch", "watches", "mirar"), ("need", "needs", "necesitar"),
    ("wash", "washes", "lavar"), ("paint", "paints", "pintar"), ("clean", "cleans", "limpiar"),
    ("carry", "carries", "llevar"), ("use", "uses", "usar"), ("take", "takes", "tomar"),
    ("draw", "draws", "dibujar"), ("sell", "sells", "vender"), ("read", "reads", "leer"),
    ("break", "breaks", "romper"), ("open", "opens", "abrir"), ("write", "writes", "escribir"),
    ("describe", "describes", "describir"), ("receive", "receives", "recibir"),
    ("hide", "hides", "esconder"), ("prepare", "prepares", "preparar"),
    ("find", "finds", "encontrar"), ("want", "wants", "querer"), ("have", "has", "tener"),
]
_EDIBLE_VERBS = [("eat", "eats", "comer")]
_EDIBLE = {"apple", "bread", "cake", "orange", "egg"}
_INTRANSITIVE = [
    ("walk", "walks", "caminar"), ("work", "works", "trabajar"), ("swim", "swims", "nadar"),
    ("sing", "sings", "cantar"), ("dance", "dances", "bailar"), ("run", "runs", "correr"),
    ("travel", "travels", "viajar"), ("rest", "rests", "descansar"),
    ("study", "studies", "estudiar"), ("live", "lives", "vivir"), ("wait", "waits", "esperar"),
]
_ADVERBS = [
    ("today", "hoy"), ("always", "siempre"), ("now", "ahora"), ("every day", "cada día"),
    ("in the morning", "por la mañana"), ("at night", "por la noche"), ("on sunday", "el domingo"),
]
# Irregular present tenses: yo, tú, él/ella, nosotros, ellos/ellas.
_IRREGULAR = {
    "encontrar": ("encuentro", "encuentras", "encuentra", "encontramos", "encuentran"),
    "querer": ("quiero", "quieres", "quiere", "queremos", "quieren"),
    "tener": ("tengo", "tienes", "tiene", "tenemos", "tienen"),
    "ser": ("soy", "eres", "es", "somos", "son"),
    "estar": ("estoy", "estás", "está", "estamos", "están"),
}
# States take "estar" rather than "ser" ("está cansado").
_ESTAR_ADJECTIVES = {"happy", "sad", "tired", "busy"}
_ENDINGS = {
    "ar": ("o", "as", "a", "amos", "an"),
    "er": ("o", "es", "e", "emos", "en"),
    "ir": ("o", "es", "e", "imos", "en"),
}
# (English, Spanish, person index into the conjugations, number)
_PRONOUNS = [
    ("i", "yo", 0, "sg"), ("you", "tú", 1, "sg"), ("he", "él", 2, "sg"),
    ("she", "ella", 2, "sg"), ("we", "nosotros", 3, "pl"), ("they", "ellos", 4, "pl"),
]
# English singular/plural, Spanish by (gender, number); None: no plural.
_DETERMINERS = [
    ("the", "the", {"msg": "el", "fsg": "la", "mpl": "los", "fpl": "las"}),
    ("a", "some", {"msg": "un", "fsg": "una", "mpl": "unos", "fpl": "unas"}),
    ("this", "these", {"msg": "este", "fsg": "esta", "mpl": "estos", "fpl": "estas"}),
    ("that", "those", {"msg": "ese", "fsg": "esa", "mpl": "esos", "fpl": "esas"}),
    ("my", "my", {"msg": "mi", "fsg": "mi", "mpl": "mis", "fpl": "mis"}),
    ("your", "your", {"msg": "tu", "fsg": "tu", "mpl": "tus", "fpl": "tus"}),
    ("our", "our", {"msg": "nuestro", "fsg": "nuestra", "mpl": "nuestros", "fpl": "nuestras"}),
    ("two", "two", None), ("three", "three", None),
]
_NUMERALS = {"two": "dos", "three": "tres"}
_PREPOSITIONS = [("in", "en"), ("near", "cerca de"), ("behind", "detrás de")]


def conjugate(infinitive: str, person: int) -> str:
    """Spanish present tense of `infinitive` for person 0..4 (yo, tú, él, nosotros, ellos)."""
    if infinitive in _IRREGULAR:
        return _IRREGULAR[infinitive][person]
    return infinitive[:-2] + _ENDINGS[infinitive[-2:]][person]


def inflect_adjective(masculine_singular: str, gender: str, number: str) -> str:
    """The Spanish adjective agreeing with a noun of `gender` ("m"/"f") and `number` ("sg"/"pl")."""
    word = masculine_singular
    if gender == "f" and word.endswith("o"):
        word = word[:-1] + "a"
    if number == "pl":
        if word.endswith("z"):
            word = word[:-1] + "ces"
        elif word[-1] in "aeiouáéíóú":
            word += "s"
        elif word == "joven":
            word = "jóvenes"
        else:
            word += "es"
    return word


@dataclass
class _Phrase:
    english: str
    spanish: str
    gender: str
    number: str


class _Generator:
    def __init__(self, rng: random.Random):
        self.rng = rng

    def noun_phrase(self, nouns, adjectives=None, allow_plural=True) -> _Phrase:
        rng = self.rng
        en_sg, en_pl, es_sg, es_pl, gender = rng.choice(nouns)
        number = "pl" if allow_plural and rng.random() < 0.4 else "sg"
        english_noun, spanish_noun = (en_pl, es_pl) if number == "pl" else (en_sg, es_sg)
        english_adjective = spanish_adjective = ""
        if rng.random() < 0.5:
            english_adjective, spanish_masculine = rng.choice(adjectives or _ADJECTIVES)
            spanish_adjective = inflect_adjective(spanish_masculine, gender, number)
        determiners = [d for d in _DETERMINERS if number == "pl" or d[2] is not None]
        en_det_sg, en_det_pl, spanish_forms = rng.choice(determiners)
        if spanish_forms is None:
            english_determiner, spanish_determiner = en_det_pl, _NUMERALS[en_det_pl]
        elif number == "pl":
            english_determiner, spanish_determiner = en_det_pl, spanish_forms[gender + "pl"]
        else:
            english_determiner, spanish_determiner = en_det_sg, spanish_forms[gender + "sg"]
        english_rest = " ".join(w for w in (english_adjective, english_noun) if w)
        if english_determiner == "a" and english_rest[0] in "aeiou":
            english_determiner = "an"
        return _Phrase(
            f"{english_determiner} {english_rest}",
            " ".join(w for w in (spanish_determiner, spanish_noun, spanish_adjective) if w),
            gender,
            number,
        )

    def subject(self):
        """(English, Spanish, person index, English third-person-singular?, gender, number)."""
        if self.rng.random() < 0.45:
            english, spanish, person, number = self.rng.choice(_PRONOUNS)
            gender = "f" if english == "she" else "m"
            return english, spanish, person, english in ("he", "she"), gender, number
        animate_adjectives = [a for a in _ADJECTIVES if a[0] in _ANIMATE_ADJECTIVES]
        phrase = self.noun_phrase(_ANIMATE, animate_adjectives)
        person = 2 if phrase.number == "sg" else 4
        return (phrase.english, phrase.spanish, person, phrase.number == "sg",
                phrase.gender, phrase.number)

    def place(self) -> tuple[str, str]:
        english_prep, spanish_prep = self.rng.choice(_PREPOSITIONS)
        english_noun, spanish_noun, gender = self.rng.choice(_PLACES)
        article = "el" if gender == "m" else "la"
        spanish = f"{spanish_prep} {article} {spanish_noun}"
        spanish = spanish.replace("de el ", "del ")
        return f"{english_prep} the {english_noun}", spanish

    def sentence(self) -> tuple[str, str]:
        rng = self.rng
        en_subject, es_subject, person, third_singular, gender, number = self.subject()
        negative = rng.random() < 0.25
        kind = rng.random()
        if kind < 0.3:
            animate_adjectives = [a for a in _ADJECTIVES if a[0] in _ANIMATE_ADJECTIVES]
            english_adjective, spanish_masculine = rng.choice(animate_adjectives)
            verb = {"i": "am", "you": "are"}.get(en_subject, "is" if third_singular else "are")
            english = f"{en_subject} {verb}{' not' if negative else ''} {english_adjective}"
            copula = "estar" if english_adjective in _ESTAR_ADJECTIVES else "ser"
            spanish_verb = conjugate(copula, person)
            spanish_adjective = inflect_adjective(spanish_masculine, gender, number)
            spanish = f"{es_subject} {'no ' if negative else ''}{spanish_verb} {spanish_adjective}"
        else:
            if kind < 0.75:
                if rng.random() < 0.15:
                    verb = rng.choice(_EDIBLE_VERBS)
                    things = [t for t in _THINGS if t[0] in _EDIBLE]
                else:
                    verb, things = rng.choice(_TRANSITIVE), _THINGS
                obj = self.noun_phrase(things)
                english_tail, spanish_tail = " " + obj.english, " " + obj.spanish
            else:
                verb = rng.choice(_INTRANSITIVE)
                english_tail = spanish_tail = ""
            base, third, infinitive = verb
            if negative:
                auxiliary = "does not" if third_singular else "do not"
                english_verb = f"{auxiliary} {base}"
            else:
                english_verb = third if third_singular else base
            english = f"{en_subject} {english_verb}{english_tail}"
            spanish_verb = conjugate(infinitive, person)
            spanish = f"{es_subject} {'no ' if negative else ''}{spanish_verb}{spanish_tail}"
        if rng.random() < 0.3:
            english_place, spanish_place = self.place()
            english, spanish = f"{english} {english_place}", f"{spanish} {spanish_place}"
        if rng.random() < 0.25:
            english_adverb, spanish_adverb = rng.choice(_ADVERBS)
            english, spanish = f"{english} {english_adverb}", f"{spanish} {spanish_adverb}"
        return _sentence_case(english) + ".", _sentence_case(spanish) + "."


def _sentence_case(text: str) -> str:
    return text[0].upper() + text[1:]


def generate_pairs(count: int, seed: int = 0) -> list[tuple[str, str]]:
    """`count` distinct (English, Spanish) sentence pairs, the same for the same seed."""
    generator = _Generator(random.Random(seed))
    pairs: dict[str, str] = {}
    attempts = 0
    while len(pairs) < count:
        attempts += 1
        if attempts > 20 * count:
            raise ValueError(f"The grammar cannot produce {count} distinct sentences.")
        english, spanish = generator.sentence()
        pairs.setdefault(english, spanish)
    return list(pairs.items())
