//! Fixed reference data of the synthetic city: administrative units, names, places and the
//! vocabularies the sources use. Every string here is plain GBK-encodable Chinese.

/// The city.
pub(crate) const CITY_CODE: &str = "4201";
pub(crate) const CITY_NAME: &str = "武汉市";

pub(crate) struct DistrictDef {
    pub code: &'static str,
    pub name: &'static str,
}

pub(crate) const DISTRICTS: [DistrictDef; 2] = [
    DistrictDef {
        code: "420106",
        name: "武昌区",
    },
    DistrictDef {
        code: "420111",
        name: "洪山区",
    },
];

pub(crate) struct StreetDef {
    pub code: &'static str,
    pub name: &'static str,
    pub district: usize,
}

pub(crate) const STREETS: [StreetDef; 4] = [
    StreetDef {
        code: "420106009",
        name: "中南路街道",
        district: 0,
    },
    StreetDef {
        code: "420106011",
        name: "水果湖街道",
        district: 0,
    },
    StreetDef {
        code: "420111001",
        name: "珞南街道",
        district: 1,
    },
    StreetDef {
        code: "420111002",
        name: "关山街道",
        district: 1,
    },
];

pub(crate) struct CommunityDef {
    pub code: &'static str,
    pub name: &'static str,
    pub street: usize,
    /// Two roads the community's compounds are numbered on.
    pub roads: [&'static str; 2],
    pub lat: f64,
    pub lon: f64,
}

const fn community(
    code: &'static str,
    name: &'static str,
    street: usize,
    roads: [&'static str; 2],
    lat: f64,
    lon: f64,
) -> CommunityDef {
    CommunityDef {
        code,
        name,
        street,
        roads,
        lat,
        lon,
    }
}

pub(crate) const COMMUNITIES: [CommunityDef; 12] = [
    community(
        "420106009001",
        "中南路社区",
        0,
        ["中南一路", "中南二路"],
        30.5380,
        114.3350,
    ),
    community(
        "420106009002",
        "丁字桥社区",
        0,
        ["丁字桥路", "石牌岭路"],
        30.5300,
        114.3300,
    ),
    community(
        "420106009003",
        "宝通寺社区",
        0,
        ["武珞路", "宝通寺路"],
        30.5280,
        114.3400,
    ),
    community(
        "420106011001",
        "东亭社区",
        1,
        ["东亭路", "公正路"],
        30.5600,
        114.3500,
    ),
    community(
        "420106011002",
        "茶港社区",
        1,
        ["茶港路", "团结路"],
        30.5520,
        114.3520,
    ),
    community(
        "420106011003",
        "水果湖社区",
        1,
        ["水果湖路", "东湖路"],
        30.5550,
        114.3600,
    ),
    community(
        "420111001001",
        "广埠屯社区",
        2,
        ["珞瑜路", "广八路"],
        30.5250,
        114.3600,
    ),
    community(
        "420111001002",
        "珞狮南路社区",
        2,
        ["珞狮南路", "雄楚大道"],
        30.5150,
        114.3550,
    ),
    community(
        "420111001003",
        "卓刀泉社区",
        2,
        ["卓刀泉路", "虎泉街"],
        30.5120,
        114.3750,
    ),
    community(
        "420111002001",
        "关山口社区",
        3,
        ["关山大道", "鲁磨路"],
        30.5080,
        114.4000,
    ),
    community(
        "420111002002",
        "光谷社区",
        3,
        ["光谷步行街", "民族大道"],
        30.5050,
        114.4100,
    ),
    community(
        "420111002003",
        "关东社区",
        3,
        ["关东街", "南湖大道"],
        30.5000,
        114.4200,
    ),
];

/// Other Wuhan districts, the registered home of floating residents (4201xx).
pub(crate) const OTHER_REGIONS: [u32; 11] = [
    420102, 420103, 420104, 420105, 420107, 420112, 420113, 420114, 420115, 420116, 420117,
];

/// Single-character surnames with rough relative frequencies (per 10,000).
pub(crate) const SURNAMES: &[(&str, u32)] = &[
    ("王", 720),
    ("李", 720),
    ("张", 690),
    ("刘", 540),
    ("陈", 460),
    ("杨", 310),
    ("黄", 230),
    ("赵", 230),
    ("吴", 200),
    ("周", 200),
    ("徐", 170),
    ("孙", 150),
    ("马", 150),
    ("朱", 140),
    ("胡", 140),
    ("郭", 130),
    ("何", 120),
    ("高", 120),
    ("林", 120),
    ("罗", 110),
    ("郑", 110),
    ("梁", 100),
    ("谢", 90),
    ("宋", 80),
    ("唐", 80),
    ("许", 70),
    ("韩", 70),
    ("冯", 70),
    ("邓", 70),
    ("曹", 70),
    ("彭", 60),
    ("曾", 60),
    ("肖", 60),
    ("田", 60),
    ("董", 50),
    ("袁", 50),
    ("潘", 50),
    ("于", 50),
    ("蒋", 50),
    ("蔡", 50),
    ("余", 50),
    ("杜", 50),
    ("叶", 40),
    ("程", 40),
    ("苏", 40),
    ("魏", 40),
    ("吕", 40),
    ("丁", 40),
    ("任", 40),
    ("沈", 40),
    ("姚", 40),
    ("卢", 40),
    ("姜", 30),
    ("崔", 30),
    ("钟", 30),
    ("谭", 30),
    ("陆", 30),
    ("汪", 30),
    ("范", 30),
    ("金", 30),
    ("石", 30),
    ("廖", 30),
    ("贾", 30),
    ("夏", 30),
    ("韦", 30),
    ("付", 30),
    ("方", 30),
    ("白", 20),
    ("邹", 20),
    ("孟", 20),
    ("熊", 30),
    ("秦", 20),
    ("邱", 20),
    ("江", 20),
    ("尹", 20),
    ("薛", 20),
    ("段", 20),
    ("雷", 20),
    ("侯", 20),
    ("龙", 20),
    ("史", 20),
    ("陶", 20),
    ("黎", 20),
    ("贺", 20),
    ("顾", 20),
    ("毛", 20),
    ("郝", 20),
    ("龚", 20),
    ("邵", 20),
    ("万", 20),
    ("严", 20),
    ("覃", 10),
    ("武", 10),
    ("戴", 10),
    ("孔", 10),
    ("向", 10),
    ("汤", 10),
    // Compound surnames (复姓): rare but they break naive "first character" masking.
    ("欧阳", 40),
    ("司马", 15),
    ("诸葛", 10),
    ("上官", 10),
    ("东方", 8),
    ("皇甫", 6),
    ("令狐", 5),
    ("慕容", 5),
    ("司徒", 6),
    ("夏侯", 5),
    ("尉迟", 4),
    ("公孙", 4),
];

/// Characters of given names: male-leaning, female-leaning, either.
pub(crate) const GIVEN_MALE: &[&str] = &[
    "伟", "强", "磊", "军", "勇", "杰", "涛", "斌", "超", "明", "刚", "平", "辉", "鹏", "华", "飞",
    "鑫", "波", "宇", "浩", "凯", "健", "俊", "帆", "帅", "旭", "宁", "龙", "林", "阳", "建", "国",
    "峰", "亮", "成", "文", "志", "海", "东", "翔", "博", "轩", "宏", "毅", "荣", "德", "永", "庆",
];
pub(crate) const GIVEN_FEMALE: &[&str] = &[
    "芳", "娜", "敏", "静", "丽", "艳", "娟", "霞", "秀", "燕", "玲", "桂", "丹", "萍", "红", "玉",
    "兰", "琳", "洁", "婷", "雪", "慧", "颖", "倩", "琴", "云", "莉", "梅", "晶", "欣", "怡", "佳",
    "雯", "蕾", "薇", "璐", "涵", "萱", "彤", "月", "楠", "悦", "英", "凤", "淑", "珍", "兰", "娥",
];
pub(crate) const GIVEN_EITHER: &[&str] = &[
    "子", "一", "思", "梓", "晨", "雨", "嘉", "可", "安", "心", "春", "秋", "金", "永", "晓", "小",
    "新", "世", "家", "德", "天", "清", "玉", "明", "立", "正", "友", "少", "忠", "若", "诗", "依",
];

/// Mobile prefixes (first three digits).
pub(crate) const MOBILE_PREFIXES: &[u32] = &[
    130, 131, 132, 133, 134, 135, 136, 137, 138, 139, 150, 151, 152, 153, 155, 156, 157, 158, 159,
    166, 170, 176, 177, 178, 180, 181, 182, 183, 184, 185, 186, 187, 188, 189, 191, 198, 199,
];

/// Places of the location traces: name, latitude, longitude.
pub(crate) const PLACES: &[(&str, f64, f64)] = &[
    ("中南路地铁站", 30.5370, 114.3390),
    ("街道口地铁站", 30.5280, 114.3540),
    ("洪山广场", 30.5450, 114.3390),
    ("武昌火车站", 30.5290, 114.3170),
    ("光谷广场", 30.5070, 114.3990),
    ("湖北省人民医院", 30.5360, 114.3130),
    ("武汉大学中南医院", 30.5560, 114.3510),
    ("楚河汉街", 30.5580, 114.3400),
    ("群光广场", 30.5280, 114.3520),
    ("销品茂", 30.5070, 114.3690),
    ("宝通寺", 30.5300, 114.3420),
    ("东湖公园", 30.5580, 114.3720),
    ("武汉站", 30.6070, 114.4240),
    ("光谷步行街", 30.5050, 114.4050),
    ("中商广场", 30.5390, 114.3400),
    ("卓刀泉农贸市场", 30.5130, 114.3760),
    ("关山大道卡口", 30.4980, 114.4120),
    ("雄楚大道卡口", 30.5110, 114.3490),
    ("水果湖菜场", 30.5540, 114.3590),
    ("丁字桥社区卫生服务中心", 30.5310, 114.3310),
    ("武昌区政务服务中心", 30.5520, 114.3150),
    ("洪山区政务服务中心", 30.5060, 114.3430),
];

/// Event categories, their relative frequency and description templates.
pub(crate) const EVENT_CATEGORIES: &[(&str, u32, &[&str])] = &[
    (
        "环境卫生",
        30,
        &[
            "楼道堆放杂物",
            "垃圾清运不及时",
            "绿化带积水发臭",
            "单元门口垃圾桶满溢",
        ],
    ),
    (
        "矛盾纠纷",
        20,
        &[
            "邻里噪音纠纷",
            "楼上漏水引发纠纷",
            "停车位占用纠纷",
            "物业费缴纳纠纷",
        ],
    ),
    (
        "安全隐患",
        20,
        &[
            "电动车楼道充电",
            "消防通道被占用",
            "外墙瓷砖脱落",
            "燃气管道老化",
        ],
    ),
    (
        "设施维修",
        15,
        &["路灯损坏", "单元门禁故障", "楼道灯不亮", "下水道堵塞"],
    ),
    ("违章搭建", 5, &["楼顶违章搭建", "占用公共绿地搭棚"]),
    (
        "民生服务",
        10,
        &["独居老人需上门探访", "低保申请咨询", "居住证办理咨询"],
    ),
];

/// Event status as the register writes it (待处理 / 处理中 / 已办结) and the shared value.
pub(crate) const EVENT_STATUS: [(&str, &str); 3] = [
    ("待处理", "pending"),
    ("处理中", "in_progress"),
    ("已办结", "closed"),
];

pub(crate) const SERVICE_TASKS: &[&str] = &[
    "关爱独居老人上门探访",
    "小区环境整治",
    "垃圾分类督导",
    "防汛值守",
    "政策宣传",
    "交通文明劝导",
    "核酸检测秩序维护",
    "社区义诊协助",
];

pub(crate) const WORKPLACE_ORGS: &[&str] = &[
    "武汉大学机关党委",
    "华中科技大学机关党委",
    "湖北省人民医院党委",
    "中建三局第一党支部",
    "武昌区城管局机关党支部",
    "洪山区教育局机关党委",
    "国网武汉供电公司党委",
    "武汉地铁集团党委",
];

pub(crate) const CHRONIC: &[&str] = &["高血压", "糖尿病", "高血压;糖尿病", "冠心病", "慢阻肺"];

/// Person tags: the register's Chinese label and the shared value.
pub(crate) const TAGS: [(&str, &str); 4] = [
    ("独居老人", "elderly_alone"),
    ("残疾人", "disabled"),
    ("低保", "low_income"),
    ("特殊关爱", "special_care"),
];
pub(crate) const TAG_ELDERLY_ALONE: u8 = 0;

pub(crate) const HEALTH_CODES: [(&str, &str); 3] =
    [("绿码", "green"), ("黄码", "yellow"), ("红码", "red")];
pub(crate) const TEST_RESULTS: [(&str, &str); 2] = [("阴性", "negative"), ("阳性", "positive")];
pub(crate) const VIA: [(&str, &str); 3] = [
    ("卡口", "checkpoint"),
    ("扫码", "scan"),
    ("通信", "telecom"),
];

/// Sensor metrics as the feed names them and the shared value.
pub(crate) const METRICS: [(&str, &str); 3] = [
    ("烟雾浓度", "smoke"),
    ("水压", "water_pressure"),
    ("电梯振动", "elevator_vibration"),
];

/// The two property companies.
pub(crate) const COMPANY_A: &str = "武汉安居物业服务有限公司";
pub(crate) const COMPANY_B: &str = "湖北楚天物业管理有限公司";

pub(crate) const EVENT_PLATFORM: &str = "社区网格化服务管理平台";
pub(crate) const TAG_SOURCE: &str = "社区认定";
