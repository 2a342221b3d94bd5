"""Curated name lists: common US first names and surnames, and words that are no names."""

from __future__ import annotations

from .vocabulary import MONTHS, STOP_WORDS


def _word_set(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Common US first names and surnames: a lone capitalised word from spaCy is kept as a
# name only when it is one of these or has name context (a curated list, not a gazetteer).
FIRST_NAMES = _word_set(
    """
    james john robert michael william david richard joseph thomas charles christopher
    daniel matthew anthony mark donald steven paul andrew joshua kenneth kevin brian
    george timothy ronald edward jason jeffrey ryan jacob gary nicholas eric jonathan
    stephen larry justin scott brandon benjamin samuel gregory alexander frank patrick
    raymond jack dennis jerry tyler aaron jose adam nathan henry douglas zachary peter
    kyle ethan walter noah jeremy christian keith roger terry gerald harold sean austin
    carl arthur lawrence dylan jesse jordan bryan billy joe bruce gabriel logan albert
    willie alan juan wayne elijah randy roy vincent ralph eugene russell bobby mason
    philip louis mario carlos luis miguel mike jim bob tom dave steve chris matt tony
    mary patricia jennifer linda elizabeth barbara susan jessica sarah karen lisa nancy
    betty margaret sandra ashley kimberly emily donna michelle carol amanda dorothy
    melissa deborah stephanie rebecca sharon laura cynthia kathleen amy angela shirley
    anna brenda pamela emma nicole helen samantha katherine christine debra rachel
    carolyn janet catherine maria heather diane ruth julie olivia joyce virginia
    victoria kelly lauren christina joan evelyn judith megan andrea cheryl hannah
    jacqueline martha gloria teresa ann sara madison frances kathryn janice jean abigail
    alice judy sophia grace denise amber doris marilyn danielle beverly isabella theresa
    diana natalie brittany charlotte marie kayla alexis lori jane jenny kate katie sue
    liz beth meg ellen anne lucy rose chloe mia ava zoe priya raj wei ming ahmed
    mohammed muhammad ali fatima omar yusuf ivan dmitri olga sofia lucas leo max oliver
    """
)
SURNAMES = _word_set(
    """
    smith johnson williams brown jones garcia miller davis rodriguez martinez hernandez
    lopez gonzalez wilson anderson thomas taylor moore jackson martin lee perez thompson
    white harris sanchez clark ramirez lewis robinson walker young allen king wright
    scott torres nguyen hill flores green adams nelson baker hall rivera campbell
    mitchell carter roberts gomez phillips evans turner diaz parker cruz edwards collins
    reyes stewart morris morales murphy cook rogers gutierrez ortiz morgan cooper
    peterson bailey reed kelly howard ramos kim cox ward richardson watson brooks chavez
    wood james bennett gray mendoza ruiz hughes price alvarez castillo sanders patel
    myers long ross foster jimenez powell jenkins perry russell sullivan bell coleman
    butler henderson barnes gonzales fisher vasquez simmons romero jordan patterson
    alexander hamilton graham reynolds griffin wallace moreno west cole hayes bryant
    herrera gibson ellis tran medina aguilar stevens murray ford castro marshall owens
    harrison fernandez mcdonald woods washington kennedy wells vargas henry chen freeman
    webb tucker guzman burns crawford olson simpson porter hunter gordon mendez silva
    shaw snyder mason dixon munoz hunt hicks holmes palmer wagner black robertson boyd
    rose stone salazar fox warren mills meyer rice schmidt garza daniels ferguson
    nichols stephens soto weaver ryan gardner payne grant dunn kelley spencer hawkins
    arnold pierce vazquez hansen peters santos hart bradley knight elliott cunningham
    duncan armstrong hudson carroll lane riley andrews alvarado ray delgado berry
    perkins hoffman johnston matthews pena richards willis carpenter lawrence sandoval
    wang li zhang liu singh kumar shah khan cohen levy murphy obrien o'brien connor
    """
)
# First names that are also common words or places: no name on their own.
AMBIGUOUS_FIRST_NAMES = {"mark", "frank", "jack", "grace", "rose", "max", "sue", "christian",
                         "austin", "charlotte", "madison", "victoria", "virginia", "sofia",
                         "amber", "jordan", "joy", "hope", "faith", "will", "bill", "art",
                         "ray", "dean", "chase", "hunter", "summer", "penny", "ruby", "long",
                         "may", "june", "april", "august", "lucas", "leo", "oliver", "scott",
                         "henry", "louis", "kelly", "lee", "king", "young"}
# Capitalised words that are never names, whatever spaCy thinks.
NOT_NAMES = STOP_WORDS | {
    "mr", "mrs", "ms", "miss", "dr", "sir", "madam", "ma'am", "mister", "doctor",
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday",
    "god", "lord", "customer", "service", "support", "team", "bank", "company", "office",
    "department", "manager", "agent", "representative", "morning", "afternoon", "evening",
    "night", "christmas", "easter", "thanksgiving", "internet", "english", "american",
    "capital", "century", "chapter", "section", "page", "part", "volume", "book",
    "street", "road", "avenue", "drive", "lane", "court", "way", "place",
} | MONTHS  # fmt: skip


def is_common_name(bare: str) -> bool:
    return bare in FIRST_NAMES or bare in SURNAMES
