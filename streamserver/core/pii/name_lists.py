"""Curated name lists: common first names and surnames of many cultures, the ones that
are also everyday words or places, and words that are no names.

A compact list, not a gazetteer: a lone capitalised word is taken as a name only when
it is one of these or has name context (``names.py``). Written forms as Whisper spells
them (accents kept; the folded spelling is added at import, so "José" and "Jose" both
match). Words that are also common English words, places, brands or products are in
the ``AMBIGUOUS_*`` sets: they count as names only next to a certain one or with
context.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

from .vocabulary import MONTHS, STOP_WORDS


@lru_cache(maxsize=8192)
def fold(word: str) -> str:
    """Lower case without accents: "García" -> "garcia", "Wiśniewski" -> "wisniewski"."""
    if word.isascii():
        return word.lower()
    decomposed = unicodedata.normalize("NFKD", word.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c)).replace("ł", "l")


def _word_set(*texts: str) -> frozenset[str]:
    words = {w for text in texts for w in text.split()}
    return frozenset(words | {fold(w) for w in words})


# ---------------------------------------------------------------- first names

_FIRST_ENGLISH = """
    james john robert michael william david richard joseph thomas charles christopher
    daniel matthew anthony donald steven paul andrew joshua kenneth kevin brian george
    timothy ronald edward jason jeffrey ryan jacob gary nicholas eric jonathan stephen
    larry justin benjamin samuel gregory alexander patrick raymond dennis jerry tyler
    aaron jose adam nathan douglas zachary peter kyle ethan walter noah jeremy keith
    roger terry gerald harold sean carl arthur lawrence dylan jesse bryan billy joe bruce
    gabriel logan albert willie alan juan wayne elijah randy roy vincent ralph eugene
    russell bobby philip mario carlos luis miguel mike jim bob tom dave steve chris matt
    tony alex andy brad bradley brent brett calvin cameron charlie clarence clifford colin
    connor corey craig curtis danny darren derek derrick devin dominic donovan doug duane
    dustin eddie edwin elliot elliott emmanuel ernest evan everett felix fernando floyd
    francis franklin fred freddie frederick garrett gavin gordon greg harry harvey hector
    herbert howard hugh ian isaac isaiah jake jamal jamie jared jarrett jasper javier jeff
    jeffery jerome jimmy joel johnny jon jonah jorge josh julian julius karl ken kenny kurt
    landon leon leonard leroy levi lewis liam lloyd lonnie luke malcolm manuel marc marco
    marcus martin marvin maurice maxwell melvin micah milton mitchell morgan nathaniel neil
    nolan norman omar oscar owen pedro perry phil quentin rafael ramon randall reggie
    reginald ricardo rick ricky riley robbie roberto rodney roland ron ronnie ross ruben
    rudy sam sammy seth shane shaun shawn sidney simon stuart terrence theodore theo toby
    todd travis trevor tyrone vernon victor wesley wyatt xavier zach zack aiden ayden
    brayden caden jayden kayden hayden jaxon jace kai kaden colton easton weston grayson
    greyson ryder sawyer axel asher ezra silas josiah eli gideon jude rhett beau brody
    bryce chance dalton darius dominick emmett finn gage grady jett judah kieran knox
    lukas matteo maddox nash reid roman rowan tucker zane zion
    mary patricia jennifer linda elizabeth barbara susan jessica sarah karen lisa nancy
    betty margaret sandra ashley kimberly emily donna michelle carol amanda dorothy
    melissa deborah stephanie rebecca cynthia kathleen amy angela shirley anna brenda
    pamela emma nicole helen samantha katherine christine debra rachel carolyn janet
    catherine maria diane ruth julie olivia joyce joan evelyn judith megan andrea cheryl
    hannah jacqueline martha gloria teresa ann sara frances kathryn janice jean abigail
    alice judy sophia denise doris marilyn danielle theresa diana natalie brittany marie
    kayla alexis lori jane jenny kate katie liz beth meg ellen anne lucy chloe mia ava zoe
    abby addison adriana aisha alana alexandra alicia alison allison alyssa amelia ana
    angelina angie anita annie ariana arianna audrey bailey becky bella bernadette bethany
    bianca bonnie briana brianna bridget brooke caitlin camila candace cara carla carmen
    caroline carrie casey cassandra cassidy cecilia charlene cindy claire clara claudia
    colleen connie courtney dana darlene deanna debbie delia edith eileen elaine eleanor
    elena eliza ella ellie eloise emilia erica erin esther eva felicia fiona gabriela
    gabrielle gail genevieve gina gwen hailey haley harper heidi irene isabel isabelle
    isabella jackie janelle jenna jill joanna jocelyn jodi josephine juanita julia juliana
    julianne kara karina kathy katrina kelsey kendra kerry kim kira kristen kristin
    kristina kylie lacey leah leila lena leslie lillian lindsay lindsey lorraine louise
    lucia lydia lynn mackenzie madeline maggie mandy marcia margarita mariah marian marina
    marissa marlene marsha maya melanie melinda meredith michaela mildred miranda molly
    monica monique nadia naomi natalia natasha nina nora norma paula pauline peggy
    penelope phyllis priscilla rachael raquel renee rhonda rita roberta rosa rosemary
    roxanne sabrina sadie sally selena serena shawna sheila shelby sherry sonia sonya
    stacy stacey stella susanna suzanne sylvia tamara tammy tanya tara tatiana tiffany
    tina toni valerie vanessa vera veronica vicki vivian wanda wendy whitney yolanda
    yvonne zoey aubrey avery brielle eliana emery everly gianna kinsley layla lila mila
    nevaeh peyton quinn skylar sienna lauren kelly
"""
_FIRST_AFRICAN_AMERICAN = """
    aaliyah imani jada jamila kiara latoya latasha keisha lakisha tanisha tamika tyra nia
    malik darnell deshawn demetrius dwayne jalen jamar jermaine lamar marquis rashad
    terrell tremaine deandre kareem andre shanice shaniqua tasha tierra aja jazmine
    kendrick cedric jabari kwame antoine
"""
_FIRST_SPANISH_PORTUGUESE_ITALIAN = """
    alejandro alejandra alberto alfonso alfredo álvaro alvaro andrés andres antonio
    armando arturo beatriz blanca catalina césar cesar cristina daniela dolores eduardo
    emilio enrique esperanza esteban fabiola felipe fernanda francisco gerardo graciela
    guadalupe guillermo gustavo hugo ignacio jaime jesús jimena joaquín joaquin josefina
    juana julio leticia lorena luz mariana marisol marta mateo nicolás octavio pablo paola
    pilar ramiro raúl raul rodrigo rosario sergio silvia valentina ximena yesenia
    maribel marisela rocío rocio inés ines consuelo araceli nayeli itzel
    joão paulo thiago tiago leandro vinícius vinicius bruno caio larissa luana renata
    gonçalo rui miguel fábio fabio
    alessandro alessandra angelo chiara cristiano davide domenico emanuele enrico
    federico francesca francesco gabriele giacomo gianluca giorgio giovanni giulia
    giuseppe giuliana lorenzo luca luigi matteo maurizio michele paolo pietro riccardo
    salvatore simone stefano vincenzo carmela concetta rosalia sofia
"""
_FIRST_EUROPEAN = """
    amélie amelie antoine aurélie aurelie benoît benoit camille céline celine chantal
    claude clément clement delphine didier dominique élodie elodie émile emile étienne
    etienne fabien françois francois guillaume hélène helene jacques julien laurent léa
    lea luc manon marcel margaux mathieu michel nathalie olivier pascal philippe pierre
    rémy remy rené rene sébastien sebastien sophie stéphane stephane sylvie thierry
    valérie véronique veronique yves
    anders anja astrid birgit björn bjorn dieter dirk elke erik erika frida fritz gerhard
    günter gunter hans heinrich helga henrik ingrid jens johan johannes jürgen jurgen
    karin katarina klaus lars magnus maja matthias nils olaf otto petra rolf sigrid sven
    thorsten ulrich ulrike uwe wolfgang annika freya greta hanna kristian niklas sanne
    sofie stefan tobias wim willem femke pieter bram daan sander ingrid sigrun solveig
    agnieszka aleksander aleksandra andrzej bartosz bogdan dariusz dorota ewa grzegorz
    jakub janusz joanna kamil katarzyna krzysztof łukasz lukasz magdalena małgorzata
    malgorzata marcin marek mariusz michał michal monika paweł pawel piotr rafał rafal
    stanisław stanislaw tomasz wojciech zbigniew zofia
    alexei aleksei alexey anastasia andrei andriy dmitri dmitry ekaterina galina igor irina
    ivan katya ksenia lyudmila maksim maxim mikhail natalya nikita nikolai oksana olga pavel
    sergei sergey svetlana tatyana vadim vladimir vladislav yelena yuri yulia yevgeny
    zhanna taras bohdan mykola olena petro vasyl volodymyr ivana jiří jiri jana petr
    dragan goran milica nikola zoran luka marija ana
    alexandros andreas christos constantine dimitris dimitrios eleni georgios giorgos
    ioannis katerina konstantinos nikos panagiotis spyros stavros theodoros vasilis
    yiannis
    aoife ciara caoimhe cian ciarán ciaran conor cormac declan deirdre eoin fionn gráinne
    grainne niamh oisín oisin pádraig padraig róisín roisin ruairí ruairi saoirse séamus
    seamus siobhán siobhan sinéad sinead aidan brendan colm dermot eamon fergus maeve
    mairead orla rory tadhg alistair angus callum catriona eilidh fraser hamish iain isla
    morag rhona rhys gareth dafydd bronwen cerys emrys ffion geraint gethin huw idris iwan
    llewellyn owain sian
"""
_FIRST_MIDDLE_EAST_TURKISH = """
    ahmet ayşe ayse burak cem deniz elif emre fatma hakan hasan hüseyin huseyin kemal
    mehmet murat osman özlem ozlem selin serkan zeynep
    abdul abdullah abdulrahman ahmad ahmed aisha amal amina amir amira anwar ayman bilal
    fadi farah farid fatima faisal hamza hana hassan hussein ibrahim imran jamila karim
    khaled khalid laila layla mahmoud mariam maryam mohamed mohammad mohammed muhammad
    mustafa nabil noor nour rami rania rashid reem salma samir sami tariq walid yasmin
    yasmine yousef youssef yusuf zainab zaid zayd hala huda lina dina ziad hadi amin
    arash babak bahram dariush farhad farzaneh hossein kourosh mahsa mehdi mina nasrin
    parisa reza roya shirin soraya yasaman
    avi ariel chaim miriam moshe noa rivka shira shlomo tamar yael yosef yitzhak
"""
_FIRST_SOUTH_ASIAN = """
    aarav abhishek aditi aditya akash amit amitabh anand anil anjali ankit anupam arjun
    arun asha ashok deepa deepak devi dinesh divya ganesh geeta gita gopal govind harish
    hari indira jaya kavita kiran krishna lakshmi lalita mahesh manish manoj meena mohan
    naveen neha nikhil nisha pooja prakash pradeep pranav priya priyanka rahul raj raja
    rajesh rajiv rakesh ramesh ravi rohan rohit sachin sanjay sandeep sanjeev santosh
    sarita shanti shiva shreya shruti siddharth sita sneha sunil sunita suresh swati tanvi
    uma usha varun vijay vikram vinod vishal yash amrit gurpreet harpreet jaspreet
    manpreet simran balwinder sukhwinder navdeep arif asif ayesha farhan fawad hamid
    irfan javed junaid kamran nadeem naveed rizwan saima sana shahid sohail tahir usman
    waqar zubair anirban arnab debashish sourav subhash tanmoy indrani moumita rupa
    karthik lakshman murugan senthil vasanth selvi kavya venkat srinivas prabhu
"""
_FIRST_EAST_ASIAN = """
    wei ming mei lin hui jing xiao jian hong hua yan ying yong ling chun feng hao lei
    qiang tao xin yun zhen xiaoling xiaoming xiaomei xiaoyu weiwei lili jingjing meiling
    huiling yanling jianguo zhiwei haoran zihan yuxuan yichen jiahui xinyi yutong zhihao
    akira aiko akiko ayumi daichi daisuke emi haruka haruki hideo hikari hiroko hiroshi
    hiroki hitomi ichiro kaito kaori kazuki kazuo keiko kenji kenta koji kumiko makoto
    mami mariko masaki masaru megumi michiko miki minoru misaki miyu naoki noriko osamu
    rei ren riko rin ryo ryota sakura satoshi sayuri shinji shota sora takashi takeshi
    takumi taro tomoko tsubasa yoko yoshiko yui yuki yuko yumi yuna yusuke yuto
    jihoon ji-hoon minjun min-jun seoyeon seo-yeon haeun ha-eun jiwoo ji-woo soojin
    soo-jin minji min-ji hyunwoo hyun-woo donghyun dong-hyun jaewon jae-won eunji eun-ji
    sungmin sung-min youngho young-ho hyejin hye-jin jiyeon ji-yeon joon junho jun-ho
    seunghoon seung-hoon sangwoo sang-woo jisoo
    anh bao binh cuong duc giang hai hanh hieu hoa hoang huong huy khanh linh minh ngoc
    nhung phuong quang quynh thanh thao thi thuy trang trinh tuan tuyet viet vinh xuan
    yen
    maricel rowena marites arnel rommel ramil rodel lorna analyn rosalie
    somchai somsak suda malee niran budi dewi siti agus wayan putu ketut ayu rini indra
    eko bambang joko hendra rizki putri
"""
_FIRST_AFRICAN = """
    adebayo adekunle adeola adewale ayodele babatunde bolaji bukola folake funke
    funmilayo kayode kehinde olumide oluwaseun oluwatobi segun seun temitope tobi tolu
    tunde wale yemi femi dayo ngozi chidi chidinma chiamaka chinedu chinonso chioma
    chukwuemeka emeka ifeoma ikenna nkechi nnamdi obinna ugochi uchenna adaeze adaora
    amaka ebere kelechi aminu musa sani yakubu hauwa hadiza kwabena kwaku kofi kojo kweku
    yaw akosua abena adwoa afua akua esi efua yaa wanjiru wambui njeri kamau otieno
    achieng akinyi baraka amani zawadi juma neema abebe tigist meron selam dawit
    yohannes tesfaye haile thabo sipho themba nomvula lerato palesa zanele bongani mandla
    lindiwe nandi
"""
# First names that are also everyday words, places or brands: not a name on their own.
_AMBIGUOUS_FIRST = """
    mark frank jack grace rose max sue christian austin charlotte madison victoria
    virginia sofia amber jordan joy hope faith will bill art ray dean chase hunter summer
    penny ruby long may june april august lucas leo oliver scott henry louis kelly lee
    king young drew pat rich guy gene rod don dale glen cliff lance buck bud cole wade
    reed rex sandy sonny misty crystal dawn ivy holly lily daisy iris jade pearl hazel
    heather violet olive ginger honey candy brandy cherry autumn winter river sky sunny
    star stone rocky angel destiny trinity genesis harmony melody mercy patience charity
    precious royal prince duke earl major miles cash price grant marshall mason cooper
    carter parker porter taylor page paige nick robin willow phoenix savannah brooklyn
    dakota cheyenne dallas houston tyler denver orlando eugene florence sydney regina
    adelaide alexandria augusta helena raleigh lincoln cleveland jackson marion beverly
    shannon sharon chelsea paris london milan vienna lourdes valencia santiago salvador
    asia aurora montana camden preston warren troy tracy kent chester winston stanley
    hamilton nelson georgia carolina india china kenya israel chad jersey alexa mercedes
    harley sierra sienna nova luna aria maverick zara paisley raven wren sage serenity
    dolly kitty chanel ebony deja jay basil clay forrest heath rusty marshall bishop
    harmony journey legend lucky lyric rain ocean storm sunshine justice liberty
    chance roman zion sherry yen
"""

# ------------------------------------------------------------------- surnames

_SURNAMES_ENGLISH = """
    smith johnson williams brown jones miller davis wilson anderson thomas taylor moore
    jackson martin lee thompson white harris clark lewis robinson walker young allen king
    wright scott hill green adams nelson baker hall campbell mitchell carter roberts
    phillips evans turner parker collins edwards stewart morris murphy cook rogers morgan
    cooper peterson bailey reed kelly howard cox ward richardson watson brooks wood james
    bennett gray hughes price sanders myers long ross foster powell jenkins perry russell
    sullivan bell coleman butler henderson barnes fisher simmons patterson alexander
    hamilton graham reynolds griffin wallace west cole hayes bryant gibson ellis stevens
    murray ford marshall owens harrison mcdonald woods washington kennedy wells henry
    freeman webb tucker burns crawford olson simpson porter hunter gordon shaw snyder
    mason dixon hunt hicks holmes palmer wagner black robertson boyd rose stone fox warren
    mills meyer rice schmidt daniels ferguson nichols stephens weaver ryan gardner payne
    grant dunn kelley spencer hawkins arnold pierce hansen peters hart bradley knight
    elliott cunningham duncan armstrong hudson carroll lane riley andrews berry perkins
    hoffman johnston matthews richards willis carpenter lawrence abbott adkins allison
    alston atkins atkinson baird baldwin ball ballard banks barber barker barnett barr
    barrett barry bartlett barton bass bates bauer baxter beasley beck becker benson
    bentley benton berg berger bishop blackburn blackwell blair blake blanchard bolton
    bond booker boone booth bowen bowers bowman boyer boyle bradford bradshaw brady brewer
    bridges briggs brock buchanan buckley burch burgess burke burnett burton bush byrd
    cain caldwell calhoun callahan cameron cannon cantrell carey carlson carney carr
    carson case chambers chandler chapman charles cherry christensen church clarke clay
    clayton cline cobb cochran combs compton conley conner conrad conway cooke copeland
    craig crane crosby cummings curry curtis dalton davenport davidson dawson day dean
    decker delaney dennis dickerson dickson dillon dodson donovan dorsey douglas doyle
    drake dudley duffy duke durham dyer eaton farmer farrell faulkner finch finley
    fitzgerald fitzpatrick fleming fletcher floyd flynn foley forbes fowler francis frank
    franklin frazier french frye fuller gallagher galloway gamble garner garrett garrison
    gates gentry gibbs gilbert giles gill gillespie glass glenn golden goodman goodwin
    graves greene greer griffith grimes gross hale haley hammond hancock hanson hardin
    harding hardy harmon harper harrell harrington hartman harvey hatfield hayden haynes
    heath hebert hendricks hendrix henson hess hester hewitt hickman higgins hines hinton
    hobbs hodge hodges hogan holden holland holloway holman holt hood hooper hoover
    hopkins horn horne horton house howe howell hubbard huber huff huffman humphrey
    hurley hurst hutchinson hyde ingram irwin jacobs jacobson jarvis jefferson jennings
    jensen johns joseph joyner kane kaufman keith keller kemp kendall kerr kidd kirby
    kirk klein kline knapp knowles koch kramer krueger lambert lamb landry lang larsen
    larson lawson leach leblanc lester levine lindsey little livingston lloyd logan lowe
    lowery lucas lynch lynn lyons macdonald mack madden maddox mahoney malone mann
    manning marks marsh massey mathews mathis maxwell mayer maynard mays mccall mccann
    mccarthy mccarty mcclain mccormick mccoy mcdaniel mcdowell mcfarland mcgee mcguire
    mcintosh mckay mckee mckenzie mckinney mclaughlin mclean mcmahon mcneil meadows
    melton mercer merritt meyers middleton miles monroe montgomery moody moon mooney
    moran morrison morrow morse morton moss mueller mullins nash neal newman newton
    nielsen noble nolan norman norris norton novak obrien o'brien oliver oneal o'neal
    osborne owen pace parks parrish parsons pate patrick patton paul pearson pennington
    phelps pittman pitts pollard poole pope potter pratt preston prince pruitt pugh
    ramsey randall randolph rasmussen ratliff reese reeves reid rhodes rich richmond
    riddle roach robbins rodgers rollins rowe rowland roy rush rutledge sampson sanford
    savage sawyer sears sellers sexton shaffer shannon sharp shelton shepard shepherd
    sheppard sherman shields short sims singleton skinner slater small sparks spears
    stafford stanley stanton stark steele stephenson stevenson stokes stout strickland
    strong stuart summers sutton swanson sweeney talley tanner tate terrell terry
    thornton todd townsend travis tyler underwood vance vaughn vincent waller walls walsh
    walter walton ware warner waters watkins watts weeks welch wheeler whitaker whitehead
    whitfield whitley wiggins wilcox wilder wilkerson wilkins wilkinson williamson
    winters wolfe woodard woodward wooten wyatt yates york abernathy
    brennan byrne callaghan casey cassidy connolly daly doherty donnelly dunne flanagan
    healy kavanagh keane kelleher kenny mcallister mcgrath mcgregor mckenna o'connell
    oconnell o'connor oconnor connor o'donnell odonnell o'neill oneill o'reilly oreilly
    o'sullivan osullivan quinn regan reilly sheehan whelan fraser macleod mackay munro
    sinclair davies griffiths llewellyn parry pritchard rees vaughan
"""
_SURNAMES_SPANISH_PORTUGUESE_ITALIAN = """
    garcía garcia rodríguez rodriguez martínez martinez hernández hernandez lópez lopez
    gonzález gonzalez gonzales pérez perez sánchez sanchez ramírez ramirez torres flores
    rivera gómez gomez díaz diaz cruz reyes morales gutiérrez gutierrez ortiz jiménez
    jimenez ruiz álvarez alvarez mendoza castillo vásquez vasquez vázquez vazquez romero
    herrera medina aguilar castro fernández fernandez guzmán guzman muñoz munoz méndez
    mendez salazar garza soto delgado peña pena ramos acosta aguirre alvarado andrade
    arias ávila avila ayala barrera benítez benitez bermúdez bermudez bravo cabrera
    calderón calderon camacho campos cantú cantu cárdenas cardenas carrasco carrillo
    castañeda castaneda cervantes cisneros contreras cordero cortés cortes cortez duarte
    escobar espinoza estrada figueroa fuentes galindo gallardo gallegos guerra guerrero
    hidalgo ibarra juárez juarez lara león leon lozano luna macías macias maldonado marín
    marin márquez marquez mejía mejia meza miranda molina montes montoya mora moreno
    navarro núñez nunez ochoa orozco ortega pacheco padilla pineda ponce quintero rangel
    ríos rios rivas robles rocha rojas rosales rosas salas salinas sandoval santana santos
    serrano silva solís solis sosa suárez suarez tapia trujillo valdez valdés valencia
    vargas vega velásquez velasquez vélez velez villanueva villarreal zamora zapata
    domínguez dominguez iglesias
    almeida alves araújo araujo barbosa cardoso carvalho costa correia dias ferreira
    gomes lopes machado martins melo mendes monteiro moreira nascimento oliveira pereira
    pinto ribeiro rodrigues soares sousa souza teixeira vieira
    amato barbieri bianchi caruso colombo conti deluca esposito ferrara fontana galli
    gallo giordano greco lombardi longo mancini marino martinelli mazza moretti morelli
    palumbo pellegrini ricci rinaldi rizzo romano rossi russo santoro serra testa vitale
    napolitano lombardo sorrentino castellano bellini caputo de luca
"""
_SURNAMES_EUROPEAN = """
    bernard blanc bonnet boyer chevalier dubois dufour dumont durand fontaine fournier
    gauthier girard guérin guerin lefebvre lefèvre lefevre leroy mercier michel moreau
    morel petit renard richard robert roussel roux simon leclerc deschamps beaulieu
    gagnon tremblay bouchard côté cote pelletier gagné gagne lavoie fortin bélanger
    belanger boucher
    braun fischer fuchs hartmann hoffmann jung kaiser köhler kohler könig konig kraus
    krüger kruger lehmann maier meier müller muller neumann richter schmitt schmitz
    schneider scholz schreiber schröder schroder schubert schulz schulze schwarz vogel
    weber weiss weiß werner wolf zimmermann schroeder schultz schwartz stein zimmerman
    bakker dekker dejong janssen jansen meijer mulder peeters smit visser vos willems
    devries hendriks
    andersen andersson carlsson dahl eriksson eriksen gustafsson hansson johansen
    johansson karlsson lindberg lindqvist lundgren magnusson nilsen nilsson olsen olsson
    pedersen persson petersen pettersson sørensen sorensen svensson
    adamczyk baran dąbrowski dabrowski grabowski jabłoński jablonski jankowski kaczmarek
    kamiński kaminski kowalczyk kowalski kozłowski kozlowski krawczyk kwiatkowski
    lewandowski mazur michalski nowak nowakowski pawlak piotrowski sikora sobczak
    szymański szymanski wiśniewski wisniewski wójcik wojcik woźniak wozniak zając zajac
    zieliński zielinski
    ivanov ivanova petrov petrova smirnov smirnova sokolov volkov volkova kuznetsov
    kuznetsova popov popova vasiliev morozov novikov fedorov orlov pavlov lebedev kozlov
    egorov stepanov nikolaev petrenko shevchenko kovalenko bondarenko tkachenko
    kravchenko boyko oliynyk melnyk lysenko marchenko savchenko rudenko horvat kovač
    kovac dvořák dvorak svoboda novotný novotny černý cerny horák horak nagy kovács
    kovacs szabó szabo tóth toth varga popescu ionescu popa radu dumitru
    papadopoulos georgiou nikolaidis pappas karagiannis alexiou dimitriou
"""
_SURNAMES_MIDDLE_EAST = """
    yılmaz yilmaz kaya demir şahin sahin çelik celik yıldız yildiz öztürk ozturk aydın
    aydin arslan doğan dogan kılıç kilic erdoğan erdogan özdemir ozdemir
    abbas aziz bakr farouk farah haddad hakim hamid hassan hussain hussein ibrahim ismail
    jaber kareem khalil khoury mahmoud mansour masri mustafa nasser qureshi rahman rashid
    saad saleh sayed shaikh sheikh suleiman tahir yousef youssef zaidi zaki nasr darwish
    ghanem hashimi al-hashimi al-sayed al-masri al-rashid abdullah
    ahmadi akbari alavi amini hosseini jafari karimi kazemi mohammadi moradi rahimi rezaei
    sadeghi tehrani farahani hashemi ebrahimi shirazi
    cohen levi levy friedman goldberg goldstein katz rosen rosenberg rubin shapiro stern
    feldman kaplan adler berman greenberg horowitz mizrahi peretz
"""
_SURNAMES_SOUTH_ASIAN = """
    agarwal aggarwal ahuja bajaj banerjee bhatt bhattacharya bose chakraborty chatterjee
    chaudhary chopra das dasgupta desai deshpande dubey dutta gandhi ganguly ghosh goel
    gupta iyer iyengar jain joshi kapoor kaur khanna kulkarni kumar malhotra mehta menon
    mishra mukherjee murthy nair naidu pandey patel patil pillai prasad rao reddy saxena
    sen sengupta sharma shetty shukla singh sinha srinivasan subramanian tiwari trivedi
    verma yadav raghunathan krishnan venkatesh venkataraman natarajan ramakrishnan
    chandrasekhar narayanan balasubramanian sandhu sidhu grewal dhillon bains brar khan
    siddiqui chaudhry butt malik mirza akhtar anwar aslam baig rana raza zaman shah
"""
_SURNAMES_EAST_ASIAN = """
    chen chang cheung chan chow chu feng gao guo han hu huang jiang kwan lam lau leung li
    liang lin liu lo lu luo ng pan peng qian shen tan tang wang wei wong wu xie xu yang
    yao ye yip yu yuan zeng zhang zhao zheng zhou zhu cai cao deng ding fu hou jin kong
    lei lim ouyang qin ren shi su tao tian xiao yan yin yue zhong zou teo goh ong koh chua
    abe aoki endo endō fujii fujita fukuda goto gotō hara hasegawa hayashi hirano ikeda
    inoue ishii ishikawa ito itō kato katō kikuchi kimura kobayashi kondo matsuda
    matsumoto miura mori murakami murata nakagawa nakajima nakamura nakano nishimura
    noguchi ogawa okada okamoto ono saito saitō sakamoto sasaki sato satō shimizu
    sugimoto takahashi takeda tamura tanaka watanabe yamada yamaguchi yamamoto yamashita
    yoshida
    kim park choi jung jeong kang cho yoon jang oh seo shin kwon hwang ahn yoo jeon ko
    bae baek heo
    nguyen nguyễn tran trần le lê pham phạm hoang hoàng huynh huỳnh phan vu vũ vo võ dang
    đặng bui bùi ngo ngô duong dương truong trương dinh đinh mai
    bautista ocampo aquino delacruz dizon pascual mercado soriano manalo
"""
_SURNAMES_AFRICAN = """
    adeyemi adebayo adeleke adewale afolabi ajayi akinola babatunde balogun bello
    ogunleye okafor okeke okonkwo okoro okoye nwosu nwachukwu eze obi chukwu igwe ibekwe
    mensah osei boateng asante owusu appiah agyeman boakye darko acheampong ansah mutua
    kamau otieno wanjiku ochieng kariuki njoroge mwangi kiprop odhiambo abebe tesfaye
    haile bekele girma mekonnen nkosi dlamini ndlovu khumalo mokoena mahlangu sithole
    naidoo diallo traoré traore koné kone touré toure keita diop ndiaye cissé cisse camara
    sylla fofana
"""
# Surnames that are also everyday words, places or brands.
_AMBIGUOUS_SURNAMES = """
    long young king hill wood stone rose bell ford price green white black brown gray
    grey rice cook west lane fox hunt love may little moon park chase hall banks rich
    dean page best strong church field mills marsh cross bird day north south gold lamb
    frost snow pope bishop knight sharp short noble wise small house key case cash glass
    bond booth lowe gamble hardy golden sparks stark waters summers winters wells rivers
    hood washington houston jordan austin lincoln cleveland preston kent york hudson
    sierra valencia santiago luna mercado miles prince duke earl cherry clay horn moss
    bush rush savage meadows stout gross bass ball bridges holland wolf finch crane marks
    walls weeks woods parks chambers
"""

FIRST_NAMES = _word_set(
    _FIRST_ENGLISH,
    _FIRST_AFRICAN_AMERICAN,
    _FIRST_SPANISH_PORTUGUESE_ITALIAN,
    _FIRST_EUROPEAN,
    _FIRST_MIDDLE_EAST_TURKISH,
    _FIRST_SOUTH_ASIAN,
    _FIRST_EAST_ASIAN,
    _FIRST_AFRICAN,
    _AMBIGUOUS_FIRST,
)
SURNAMES = _word_set(
    _SURNAMES_ENGLISH,
    _SURNAMES_SPANISH_PORTUGUESE_ITALIAN,
    _SURNAMES_EUROPEAN,
    _SURNAMES_MIDDLE_EAST,
    _SURNAMES_SOUTH_ASIAN,
    _SURNAMES_EAST_ASIAN,
    _SURNAMES_AFRICAN,
    _AMBIGUOUS_SURNAMES,
)
# First names that are also common words or places: no name on their own.
AMBIGUOUS_FIRST_NAMES = _word_set(_AMBIGUOUS_FIRST)
# Surnames that are also common words or places: no name on their own either.
AMBIGUOUS_SURNAMES = _word_set(_AMBIGUOUS_SURNAMES)
AMBIGUOUS_NAMES = AMBIGUOUS_FIRST_NAMES | AMBIGUOUS_SURNAMES

# Capitalised words that are never names, whatever spaCy thinks.
NOT_NAMES = frozenset(STOP_WORDS | MONTHS | _word_set("""
    mr mrs ms miss dr sir madam ma'am mister doctor prof professor
    monday tuesday wednesday thursday friday saturday sunday
    god lord customer service support team bank company office department manager agent
    representative morning afternoon evening night christmas easter thanksgiving internet
    capital century chapter section page part volume book street road avenue drive lane
    court way place
    english american canadian mexican british chinese japanese korean indian spanish
    french german italian russian african asian european latino hispanic muslim jewish
    catholic irish scottish polish vietnamese filipino thai indonesian nigerian ghanaian
    kenyan ethiopian egyptian arab arabic persian iranian iraqi turkish greek dutch
    swedish norwegian danish finnish portuguese brazilian argentinian colombian cuban
    puerto rican peruvian venezuelan chilean jamaican haitian dominican salvadoran
    guatemalan honduran pakistani bangladeshi lankan nepali nepalese ukrainian romanian
    hungarian czech serbian croatian bosnian albanian bulgarian lebanese syrian
    palestinian israeli saudi moroccan somali sudanese australian texan californian
    baptist methodist lutheran mormon buddhist hindu sikh protestant orthodox republican
    democrat democratic conservative liberal independent retired deaf blind disabled
    texas california florida ohio michigan oregon arizona utah colorado kansas iowa idaho
    alabama alaska arkansas connecticut delaware hawaii illinois kentucky louisiana maine
    maryland massachusetts minnesota mississippi missouri nebraska oklahoma pennsylvania
    tennessee vermont wisconsin wyoming nevada mexico canada france germany italy spain
    japan korea vietnam england ireland scotland britain europe russia ukraine poland
    brazil argentina egypt nigeria ghana pakistan iran iraq greece portugal sweden norway
    denmark finland australia chicago boston seattle atlanta miami tampa detroit portland
    springfield manhattan normandy nepal tokyo
    tv hdtv iphone ipad android windows mac pc xbox playstation netflix amazon google
    siri cortana youtube facebook instagram twitter tiktok zoom skype uber lyft visa
    mastercard amex paypal venmo zelle honda toyota nissan civic tesla bmw audi chevy
    chevrolet dodge jeep subaru mazda hyundai kia volkswagen verizon comcast xfinity
    spectrum walmart costco starbucks dell microsoft apple samsung sony nokia motorola
    boeing airbus fedex ups usps dhl
    irs dmv ssn pin cvv dob vin iban swift bic atm usa uk eu fbi hr ceo id ok
    please thanks
"""))  # fmt: skip

# Particles inside a name ("Ludwig van Beethoven", "María de la Cruz", "Omar bin Said").
NAME_PARTICLES = _word_set(
    "van von der den de del della di da dos das du la le bin ibn bint al el ben abu ter ten"
)


def _known(bare: str) -> bool:
    if bare in FIRST_NAMES or bare in SURNAMES:
        return True
    parts = [p for p in bare.split("-") if p and p not in NAME_PARTICLES]
    return "-" in bare and bool(parts) and all(p in FIRST_NAMES or p in SURNAMES for p in parts)


def is_common_name(bare: str) -> bool:
    """A first name or surname of the lists ("maría", "o'brien", "al-hashimi")."""
    return _known(bare) or _known(fold(bare))


def is_certain_name(bare: str) -> bool:
    """A listed name that is not also an everyday word or place ("hiroshi", not "will")."""
    return is_common_name(bare) and bare not in AMBIGUOUS_NAMES and fold(bare) not in (
        AMBIGUOUS_NAMES
    )


def is_first_name(bare: str) -> bool:
    return bare in FIRST_NAMES or fold(bare) in FIRST_NAMES


def is_surname(bare: str) -> bool:
    return bare in SURNAMES or fold(bare) in SURNAMES or (
        "-" in bare and _known(bare)
    )
